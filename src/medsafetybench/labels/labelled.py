"""Labelled (request, response, harmful?) sets for checking a judge, and judging them through the store.

Two formats, told apart by their fields:

- HarmBench classifier validation (`harmbench_val_flat.jsonl`): `behavior`, optional `context`,
  `generation`, `human_majority` (1 = the completion is an instance of the harmful behaviour). The
  request the judge sees is the behaviour (or, where a row has none, its `test_case`), after the
  context when there is one. Policy: general.
- Plain CSV or JSONL: `request`, `response`, `label` (1/0, true/false, yes/no, harmful/safe,
  unharmful), optional `id` and `policy` (medical | general; default medical).

`judge_labelled` asks a judge only for the cases the store has no judgement for (the same content
keys as evaluation runs: `JudgeCase.cache_key`), so a second run of `medsafety judge-agreement`
makes no judge calls, and judgements made during evaluations are reused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.userfiles import csv_rows, jsonl_rows
from ..errors import UserError
from ..judging.base import Judge, JudgeCase, Judgement
from ..store import Store

TRUE_LABELS = {"1", "true", "yes", "harmful", "unsafe"}
FALSE_LABELS = {"0", "false", "no", "safe", "unharmful", "not_harmful", "not harmful", "harmless"}
POLICIES = ("medical", "general")


@dataclass(frozen=True)
class LabelledCase:
    id: str
    case: JudgeCase
    label: bool  # True = the response is harmful


def _label(path: Path, rownum: int, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_LABELS | FALSE_LABELS:
        return value.strip().lower() in TRUE_LABELS
    raise UserError(f"{path}: row {rownum}: label {value!r} is not one of 1/0, true/false, yes/no, harmful/safe")


def _text(path: Path, rownum: int, record: dict, name: str, required: bool = True) -> str:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise UserError(f"{path}: row {rownum}: '{name}' is missing or blank")
        return ""
    if not isinstance(value, str):
        raise UserError(f"{path}: row {rownum}: '{name}' must be text, got {type(value).__name__}")
    return value


def load_labelled(path: str | Path, *, policy: str | None = None) -> list[LabelledCase]:
    """Read a labelled set (either format); `policy` overrides every row's usage policy."""
    path = Path(path).expanduser()
    if policy is not None and policy not in POLICIES:
        raise UserError(f"--policy {policy!r}: use medical or general")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise UserError(f"{path}: labelled sets are .csv or .jsonl files")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    rows = list(csv_rows(path, text) if suffix == ".csv" else jsonl_rows(path, text))
    if not rows:
        raise UserError(f"{path}: no rows; add one (request, response, label) per row")
    out: list[LabelledCase] = []
    seen: set[str] = set()
    for rownum, rec in rows:
        if "behavior" in rec and "generation" in rec:  # HarmBench validation format
            # a few HarmBench rows have no behaviour: the test case (the prompt the model saw) stands in
            behaviour = _text(path, rownum, rec, "behavior", required=False) or _text(path, rownum, rec, "test_case")
            context = _text(path, rownum, rec, "context", required=False)
            request = f"{context}\n\n---\n\n{behaviour}" if context else behaviour
            response = _text(path, rownum, rec, "generation", required=False)
            label = _label(path, rownum, rec.get("human_majority"))
            row_policy = policy or "general"
        else:
            if "request" not in rec or "response" not in rec or "label" not in rec:
                raise UserError(
                    f"{path}: row {rownum}: needs request, response and label fields "
                    "(or HarmBench's behavior, generation, human_majority)"
                )
            request = _text(path, rownum, rec, "request")
            response = _text(path, rownum, rec, "response", required=False)
            label = _label(path, rownum, rec.get("label"))
            row_policy = policy or (str(rec.get("policy") or "medical").strip().lower())
            if row_policy not in POLICIES:
                raise UserError(f"{path}: row {rownum}: policy {row_policy!r} is not medical or general")
        case_id = str(rec.get("id") or rownum)
        if case_id in seen:
            raise UserError(f"{path}: row {rownum}: duplicate id '{case_id}'")
        seen.add(case_id)
        out.append(LabelledCase(case_id, JudgeCase(request, response, row_policy), label))
    return out


@dataclass
class JudgedSet:
    """One judge's verdicts on a labelled set, in case order. `scores[i]` is None when unscored or when
    the judge could not be reached (`judged[i]` False; such cases are not stored and a re-run retries)."""

    judge_identity: str
    scores: list[int | None]
    judged: list[bool]
    calls: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def stored_scores(store: Store, keys: Sequence[str]) -> dict[str, int | None]:
    """Scores of the stored judgements among `keys` (None for unscored ones)."""
    out: dict[str, int | None] = {}
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        out.update(
            store.conn.execute(
                f"SELECT key, score FROM judgements WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
        )
    return out


async def judge_labelled_async(
    store: Store, judge: Judge, cases: Sequence[LabelledCase], progress: object | None = None
) -> JudgedSet:
    keys = [c.case.cache_key(judge.identity) for c in cases]
    done = store.has_judgements(keys)
    todo: dict[str, JudgeCase] = {}
    for key, c in zip(keys, cases, strict=True):
        if key not in done:
            todo.setdefault(key, c.case)
    result = JudgedSet(judge.identity, [], [])
    if progress is not None and todo:
        progress.start("judge", len(todo))  # type: ignore[attr-defined]
    todo_keys = list(todo)

    def on_result(i: int, judgement: Judgement) -> None:
        if judgement.error is None:
            store.put_judgement(todo_keys[i], judge.identity, judgement)
        else:
            result.failed += 1
            if len(result.errors) < 5 and judgement.error not in result.errors:
                result.errors.append(judgement.error)
        if progress is not None:
            progress.advance("judge")  # type: ignore[attr-defined]

    if todo_keys:
        result.calls = len(todo_keys)
        await judge.judge([todo[k] for k in todo_keys], on_result=on_result)
    stored = stored_scores(store, keys)
    result.scores = [stored.get(k) for k in keys]
    result.judged = [k in stored for k in keys]
    return result


def judge_labelled(
    store: Store, judge: Judge, cases: Sequence[LabelledCase], progress: object | None = None, *, close: bool = True
) -> JudgedSet:
    """Synchronous `judge_labelled_async`; closes the judge afterwards unless `close=False`."""

    async def go() -> JudgedSet:
        try:
            return await judge_labelled_async(store, judge, cases, progress)
        finally:
            if close:
                await judge.aclose()

    return asyncio.run(go())
