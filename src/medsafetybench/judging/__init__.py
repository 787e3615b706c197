"""Judging: the judge core. A judge = a prompt template (exact, versioned) + a backend + an output
parser + a declared scale (`base.Scale`), chosen by a spec string through one registry.

- `base`: the `Judge` protocol and its records (`JudgeCase`, `Judgement`, `JudgeSpec`, `Scale`).
- `registry`: spec string -> judge (`load_judge`, `JUDGES`, `register_judge`, the
  `medsafetybench.judges` entry-point group); it states which offline judge `offline` means.
- `prompt`, `parser`: the paper's judge prompt (exact, versioned) and its `#score` parser.
- `llm`: the paper's LLM judge over any model spec.
- `classifiers/`: the field's safety classifiers (Llama Guard 3/4, WildGuard, HarmBench, ShieldGemma).
- `offline/`: the offline judges, each version with its weights and training fingerprints.

Measurements that are not judges live elsewhere: the refusal detector in `metrics.refusal`, judge
agreement and labelled sets in `labels/`.
"""

from __future__ import annotations

from .base import Judge, JudgeCase, Judgement, JudgeSpec
from .parser import ParsedScore, parse_judge_output
from .prompt import PROMPT_VERSION, build_judge_prompt
from .registry import (
    JUDGES,
    OFFLINE,
    ParsedJudgeSpec,
    is_offline,
    judge_names,
    load_judge,
    parse_judge_spec,
    register_judge,
    validate_judge_spec,
)

__all__ = [
    "JUDGES",
    "OFFLINE",
    "PROMPT_VERSION",
    "Judge",
    "JudgeCase",
    "JudgeSpec",
    "Judgement",
    "ParsedJudgeSpec",
    "ParsedScore",
    "build_judge_prompt",
    "is_offline",
    "judge_names",
    "load_judge",
    "parse_judge_output",
    "parse_judge_spec",
    "register_judge",
    "validate_judge_spec",
]
