"""Judging: the paper's judge prompt, the score parser, LLM judges and the offline judges.

`load_judge(spec)` builds a judge from what a user types: `offline` (the default: the offline judge
v2, a MiniLM cross-encoder, no service needed, an approximation), `offline-v1` (the superseded v1,
kept so runs judged by it can be extended under the same identity), or any model spec
(`openai:gpt-3.5-turbo-0125`, `hf:/path`, ...) for an LLM judge.
"""

from __future__ import annotations

from typing import Any

from .base import Judge, JudgeCase, Judgement
from .parser import ParsedScore, parse_judge_output
from .prompt import PROMPT_VERSION, build_judge_prompt

OFFLINE = "offline"
OFFLINE_V1 = "offline-v1"
OFFLINE_SPECS = (OFFLINE, "offline-v2", OFFLINE_V1)


def is_offline(spec: str | None) -> bool:
    """True for the specs of the offline judges (None means the default, `offline`)."""
    return spec is None or spec.strip().lower() in OFFLINE_SPECS


def load_judge(spec: str | None = None, *, max_attempts: int = 3, **model_options: Any) -> Judge:
    """`offline` / `offline-v2` (or None) -> the offline judge v2; `offline-v1` -> the v1 judge;
    anything else is a model spec for an LLM judge (`model_options` go to its backend)."""
    if is_offline(spec):
        if spec is not None and spec.strip().lower() == OFFLINE_V1:
            from .offline_v1 import OfflineJudgeV1

            return OfflineJudgeV1()
        from .offline import OfflineJudge

        return OfflineJudge()
    from ..models.spec import load_model
    from .llm import LLMJudge

    assert spec is not None
    return LLMJudge(load_model(spec, **model_options), max_attempts=max_attempts)


__all__ = ["Judge", "JudgeCase", "Judgement", "ParsedScore", "parse_judge_output", "PROMPT_VERSION",
           "build_judge_prompt", "load_judge", "is_offline", "OFFLINE", "OFFLINE_V1", "OFFLINE_SPECS"]
