"""Running a model from a synchronous test: generate, then close it whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from medsafetybench.models.base import ChatRequest, Completion


def generate_and_close(model: Any, requests: Sequence[ChatRequest]) -> list[Completion]:
    """`model.generate(requests)` in a fresh event loop; the model is closed afterwards."""

    async def go() -> list[Completion]:
        try:
            return await model.generate(list(requests))
        finally:
            await model.aclose()

    return asyncio.run(go())
