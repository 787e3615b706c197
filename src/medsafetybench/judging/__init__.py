"""Judging: the paper's judge prompt, the score parser, LLM judges and the offline judges.

`load_judge(spec)` builds a judge from what a user types: `offline` (the default, no service needed,
an approximation), `offline-v1` / `offline-v2` (a named offline judge), or any model spec
(`openai:gpt-3.5-turbo-0125`, `hf:/path`, ...) for an LLM judge.

`offline` still means v1: the first v2 weights measure worse than v1 on HarmBench val under the
held-out protocol (docs/judges.md), so the default moves to v2 only when v2 measures better
(`DEFAULT_OFFLINE`). Each version keeps its own identity, so stored runs keep their meaning.
"""

from __future__ import annotations

from typing import Any

from .base import Judge, JudgeCase, Judgement
from .parser import ParsedScore, parse_judge_output
from .prompt import PROMPT_VERSION, build_judge_prompt

OFFLINE = "offline"
OFFLINE_V1 = "offline-v1"
OFFLINE_V2 = "offline-v2"
OFFLINE_SPECS = (OFFLINE, OFFLINE_V1, OFFLINE_V2)
DEFAULT_OFFLINE = OFFLINE_V1  # what `offline` means


def is_offline(spec: str | None) -> bool:
    """True for the specs of the offline judges (None means the default, `offline`)."""
    return spec is None or spec.strip().lower() in OFFLINE_SPECS


def load_judge(spec: str | None = None, *, max_attempts: int = 3, **model_options: Any) -> Judge:
    """`offline-v1` -> the v1 judge; `offline-v2` -> the v2 cross-encoder; `offline` (or None) ->
    `DEFAULT_OFFLINE`; anything else is a model spec for an LLM judge (`model_options` go to its
    backend)."""
    if is_offline(spec):
        name = DEFAULT_OFFLINE if spec is None or spec.strip().lower() == OFFLINE else spec.strip().lower()
        if name == OFFLINE_V1:
            from .offline_v1 import OfflineJudgeV1

            return OfflineJudgeV1()
        from .offline import OfflineJudge

        return OfflineJudge()
    from ..models.spec import load_model
    from .llm import LLMJudge

    assert spec is not None
    return LLMJudge(load_model(spec, **model_options), max_attempts=max_attempts)


__all__ = ["Judge", "JudgeCase", "Judgement", "ParsedScore", "parse_judge_output", "PROMPT_VERSION",
           "build_judge_prompt", "load_judge", "is_offline", "OFFLINE", "OFFLINE_V1", "OFFLINE_V2", "OFFLINE_SPECS",
           "DEFAULT_OFFLINE"]
