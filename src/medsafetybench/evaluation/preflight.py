"""Checks an evaluation runs before it sends anything: specs before the project is touched, and
request lengths once the models are loaded.

- `check_specs(models, judges)` parses and checks model and judge specs (paths, extras, keys) without
  loading anything, so a typo fails before `medsafety.db` is created (`validate_spec`,
  `validate_judge_spec`).
- `length_warnings_for(model, judges, items, settings)` flags items whose request does not fit the
  model's context window, or the window of a judge's model (the judge prompt with an empty response,
  a lower bound); see `models/context.py` for the policy (warn, never cut).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..data.schema import Item
from ..judging.base import JudgeCase
from ..judging.registry import validate_judge_spec
from ..models.context import length_warnings
from ..models.spec import ModelSpec, validate_spec


def check_specs(models: Iterable[str], judges: Iterable[str], *, judge_role: str = "--judge") -> list[ModelSpec]:
    """Validate every spec; returns the parsed model specs. Raises `UserError` on the first bad one."""
    parsed = [validate_spec(m) for m in models]
    for j in judges:
        validate_judge_spec(j, role=judge_role)
    return parsed


def length_warnings_for(model: Any, judges: Sequence[Any], items: Sequence[Item], settings: Any) -> list[str]:
    """One line per model or judge model that some items do not fit (empty when all fit).

    Args:
        model: the loaded model (checked when it implements `SupportsContextLength`).
        judges: loaded judges; those with a `model` and `request_for(case)` (LLM judges) are checked.
        items: the items of the evaluation.
        settings: an `EvalSettings` (its `request_for(item)` builds the model's requests).
    """
    ids = [it.id for it in items]
    lines = length_warnings(model, [settings.request_for(it) for it in items], ids, role="--model")
    for judge in judges:
        judge_model = getattr(judge, "model", None)
        if judge_model is None or not hasattr(judge, "request_for"):
            continue
        requests = [judge.request_for(JudgeCase(it.request, "", it.policy)) for it in items]
        lines += length_warnings(judge_model, requests, ids, role="--judge")
    return lines
