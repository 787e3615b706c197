"""Judging: the paper's judge prompt, the score parser, LLM judges and the offline judge.

`load_judge(spec)` builds a judge from what a user types: `offline` (the default, no service needed,
an approximation), any model spec (`openai:gpt-3.5-turbo-0125`, `hf:/path`, ...) for an LLM judge,
or `NAME:ARGS` for any judge in the registry (`registry.py`: the `JUDGES` table, `register_judge`,
the `medsafetybench.judges` entry-point group).
"""

from __future__ import annotations

from .base import Judge, JudgeCase, Judgement, JudgeSpec
from .parser import ParsedScore, parse_judge_output
from .prompt import PROMPT_VERSION, build_judge_prompt
from .registry import (
    JUDGES,
    OFFLINE,
    ParsedJudgeSpec,
    judge_names,
    load_judge,
    parse_judge_spec,
    register_judge,
    validate_judge_spec,
)

__all__ = ["Judge", "JudgeCase", "Judgement", "ParsedScore", "parse_judge_output", "PROMPT_VERSION",
           "build_judge_prompt", "load_judge", "OFFLINE", "JUDGES", "JudgeSpec", "ParsedJudgeSpec", "judge_names",
           "parse_judge_spec", "register_judge", "validate_judge_spec"]
