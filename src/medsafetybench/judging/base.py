"""The judge interface and its records.

A judge reads (request, response, usage policy) cases and returns one `Judgement` per case, in order,
calling `on_result(index, judgement)` as each finishes (on the event-loop thread). A judgement whose
`score` is None is *unscored*: it keeps the judge's raw text and is counted as such in every summary,
never as a 1 or a 5.

`identity` names the judge and its prompt version (e.g. `llm:openai:gpt-3.5-turbo-0125|msb-judge-v1`
or `offline:minilm-ce-v2-<weights digest>`): judgements from different identities never mix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..models.base import Usage


@dataclass(frozen=True)
class JudgeCase:
    request: str
    response: str
    policy: str = "medical"  # "medical" (AMA principles) | "general" (Meta's usage policy)

    def cache_key(self, judge_identity: str) -> str:
        """Content key of a judgement: judge identity (incl. prompt version) + policy + request + response."""
        payload = json.dumps({"judge": judge_identity, "policy": self.policy, "request": self.request,
                              "response": self.response}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Judgement:
    score: int | None  # 1-5, or None when unscored
    reason: str = ""
    raw: str = ""
    attempts: int = 1
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # set when the judge could not be reached at all (not stored)

    @property
    def scored(self) -> bool:
        return self.score is not None


JudgementCallback = Callable[[int, Judgement], None]


@runtime_checkable
class Judge(Protocol):
    identity: str

    async def judge(self, cases: Sequence[JudgeCase],
                    on_result: JudgementCallback | None = None) -> list[Judgement]: ...

    async def aclose(self) -> None: ...
