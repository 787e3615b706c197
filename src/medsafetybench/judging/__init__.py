"""Judging: the paper's judge prompt, the score parser, LLM judges and the offline judges.

`load_judge(spec)` builds a judge from what a user types: `offline` (the default, no service needed,
an approximation: `offline-v1` today), `offline-v1` / `offline-v2` / `offline-v3` (a named offline
judge), any model spec (`openai:gpt-3.5-turbo-0125`, `hf:/path`, ...) for an LLM judge, or `NAME:ARGS` for any judge in the
registry (`registry.py`: the `JUDGES` table, `register_judge`, the `medsafetybench.judges` entry-point
group), such as the safety classifiers over a model spec (`llamaguard3:hf:/path`, `wildguard:...`,
`harmbench:...`, `shieldgemma:...`; `classifier.py` and one module each).

`offline` still means v1: the first v2 weights measure worse than v1 on HarmBench val under the
held-out protocol, and v3 beats v1 on HarmBench and on RBR gold's benign rows but not on MediCheck's
benign medical answers held out (docs/judges.md), so the default moves (one line in `registry.JUDGES`)
only when a version beats v1 on all of them. Each version keeps its own identity, so stored runs keep
their meaning.
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

OFFLINE_V1 = "offline-v1"
OFFLINE_V2 = "offline-v2"
OFFLINE_V3 = "offline-v3"
OFFLINE_SPECS = (OFFLINE, OFFLINE_V1, OFFLINE_V2, OFFLINE_V3)


def is_offline(spec: str | None) -> bool:
    """True for the specs of the offline judges (None means the default, `offline`)."""
    return spec is None or spec.strip().lower() in OFFLINE_SPECS


__all__ = ["is_offline", "OFFLINE_V1", "OFFLINE_V2", "OFFLINE_V3", "OFFLINE_SPECS", "Judge", "JudgeCase", "Judgement", "ParsedScore", "parse_judge_output", "PROMPT_VERSION",
           "build_judge_prompt", "load_judge", "OFFLINE", "JUDGES", "JudgeSpec", "ParsedJudgeSpec", "judge_names",
           "parse_judge_spec", "register_judge", "validate_judge_spec"]
