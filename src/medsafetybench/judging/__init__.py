"""Judging: the paper's judge prompt, the score parser, LLM judges and the offline judge.

`load_judge(spec)` builds a judge from what a user types: `offline` (the default, no service needed,
an approximation) or any model spec (`openai:gpt-3.5-turbo-0125`, `hf:/path`, ...) for an LLM judge.
"""

from __future__ import annotations

from typing import Any

from .base import Judge, JudgeCase, Judgement
from .parser import ParsedScore, parse_judge_output
from .prompt import PROMPT_VERSION, build_judge_prompt

OFFLINE = "offline"


def load_judge(spec: str | None = None, *, max_attempts: int = 3, **model_options: Any) -> Judge:
    """`offline` (or None) -> the offline judge; anything else is a model spec for an LLM judge."""
    if spec is None or spec.strip().lower() == OFFLINE:
        from .offline import OfflineJudge

        return OfflineJudge()
    from ..models.spec import load_model
    from .llm import LLMJudge

    return LLMJudge(load_model(spec, **model_options), max_attempts=max_attempts)


__all__ = ["Judge", "JudgeCase", "Judgement", "ParsedScore", "parse_judge_output", "PROMPT_VERSION",
           "build_judge_prompt", "load_judge", "OFFLINE"]
