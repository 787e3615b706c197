"""A local model that loads its weights on its first request. Its identity comes from the spec and the
files (`model_identity`, no weights read), so a run whose responses are all in the store loads nothing:
a cached re-run of an `hf:` evaluation costs what reading the store costs, as the Ray engine's does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .base import ChatModel, ChatRequest, Completion, ResultCallback
from .loading import load_model
from .spec import ModelSpec


class DeferredModel:
    """`load_model(spec, **options)` on the first `generate`; until then only `identity` is known (other
    attributes exist once loaded, so capability checks see none before)."""

    def __init__(self, spec: ModelSpec, options: dict[str, Any], identity: str) -> None:
        self.identity = identity
        self._spec, self._options = spec, dict(options)
        self._model: ChatModel | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> ChatModel:
        if self._model is None:
            self._model = load_model(self._spec, **self._options)
        return self._model

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        if not requests:
            return []
        model = self._model or await asyncio.to_thread(self._load)
        return await model.generate(requests, on_result=on_result)

    def __getattr__(self, name: str) -> Any:
        model = self.__dict__.get("_model")
        if model is None:
            raise AttributeError(name)
        return getattr(model, name)

    async def aclose(self) -> None:
        if self._model is not None:
            await self._model.aclose()
