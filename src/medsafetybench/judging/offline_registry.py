"""Registry hooks shared by the offline judges (`offline-v1`, `offline-v2`, `offline-v3`, and
`offline`, the default):
no arguments, no model, the packages each needs checked without importing them."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..errors import MissingExtra, UserError
from .base import JudgeCase, Judgement, JudgementCallback


class OfflineJudgeSpec:
    """Mixin for a judge class that wraps no model: `check_spec` / `from_spec`, and the `Judge` protocol's
    `judge` / `aclose` over the class's synchronous `_judgements(batch)`, run `batch_size` cases at a time
    in a worker thread (so the event loop keeps serving the other stages)."""

    batch_size: int

    OPTIONS: ClassVar[frozenset[str]] = frozenset()  # the CLI's batch_size is for models, not for this judge
    REQUIRES: ClassVar[tuple[str, ...]] = ()
    SPEC_NAME: ClassVar[str] = "offline"

    @classmethod
    def check_spec(cls, args: str) -> None:
        """No arguments, and the `offline` extra's packages are installed (nothing is loaded)."""
        if args:
            raise UserError(f"the offline judge takes no arguments (got '{args}'); write --judge {cls.SPEC_NAME}")
        for module in cls.REQUIRES:
            if importlib.util.find_spec(module) is None:
                raise MissingExtra("offline", module, "The offline judge")

    @classmethod
    def from_spec(cls, args: str, *, model_options: Mapping[str, Any], **options: Any) -> Any:
        """The shipped judge (model options are ignored: it wraps no model)."""
        cls.check_spec(args)
        return cls(**options)

    def _judgements(self, cases: list[JudgeCase]) -> list[Judgement]:
        raise NotImplementedError

    async def judge(self, cases: Sequence[JudgeCase],
                    on_result: JudgementCallback | None = None) -> list[Judgement]:
        results: list[Judgement] = []
        for start in range(0, len(cases), self.batch_size):
            batch = list(cases[start:start + self.batch_size])
            got = await asyncio.to_thread(self._judgements, batch)
            for i, j in enumerate(got):
                results.append(j)
                if on_result is not None:
                    on_result(start + i, j)
        return results

    async def aclose(self) -> None:
        return None
