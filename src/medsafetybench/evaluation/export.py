"""Exports of a run: JSONL, CSV and Parquet views of the store, one row per item, written atomically
(a temporary file renamed into place, so a failed export leaves no partial file). Every row carries what
makes it comparable: model identity, judge identity and prompt version, the settings and item-set digests,
the package version and the benchmark data commit (and Parquet files the run's whole provenance as schema
metadata)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from ..errors import UserError, require
from ..store import RunInfo, RunRow, Store

FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = (
    "run_id",
    "run_name",
    "item_id",
    "split",
    "source",
    "principle",
    "policy",
    "request",
    "safe_response",
    "response",
    "score",
    "harmful",
    "label",
    "categories",
    "refused",
    "reason",
    "judge_raw",
    "response_prompt_tokens",
    "response_completion_tokens",
    "model",
    "model_identity",
    "judge",
    "judge_prompt_version",
    "settings_digest",
    "items_digest",
    "medsafetybench",
    "data_commit",
)


def _record(run: RunInfo, judge: str, r: RunRow, refused: bool | None) -> dict:
    prov = run.provenance if isinstance(run.provenance, dict) else {}
    data = prov.get("data") if isinstance(prov.get("data"), dict) else {}
    return {
        "run_id": run.id,
        "run_name": run.name,
        "item_id": r.item_id,
        "split": r.split,
        "source": r.source,
        "principle": r.principle,
        "policy": r.policy,
        "request": r.request,
        "safe_response": r.safe_response,
        "response": r.response,
        "score": r.score,
        "harmful": r.harmful,
        "label": r.label,
        "categories": ",".join(r.categories),
        "refused": refused,
        "reason": r.reason,
        "judge_raw": r.judge_raw,
        "response_prompt_tokens": r.prompt_tokens,
        "response_completion_tokens": r.completion_tokens,
        "model": run.model_spec,
        "model_identity": run.model_identity,
        "judge": judge,
        "judge_prompt_version": judge.rsplit("|", 1)[1] if "|" in judge else None,
        "settings_digest": run.settings_digest,
        "items_digest": run.items_digest,
        "medsafetybench": prov.get("medsafetybench"),
        "data_commit": data.get("commit"),
    }


def format_for(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the export format of '{path}': use --format {'|'.join(FORMATS)}")
    return fmt


def export_run(store: Store, run_id: str, out: str | Path, fmt: str | None = None, judge: str | None = None) -> int:
    """Write every item of the run to `out` (judgements of `judge`, default the run's primary judge);
    returns the number of rows."""
    from .pipeline import refusal_flags

    out = Path(out)
    fmt = format_for(out, fmt)
    run = store.run(run_id)
    judge = store.run_judge_identity(run.id, judge) if judge else run.judge_identity
    rows = store.run_rows(run.id, judge or None)
    records = [_record(run, judge, r, f) for r, f in zip(rows, refusal_flags([r.response for r in rows]), strict=True)]
    if fmt == "parquet":
        pa = require("pyarrow", "parquet", "Parquet export")
        pq = require("pyarrow.parquet", "parquet", "Parquet export")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for rec in records:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(records)
        else:
            table = pa.Table.from_pylist(records) if records else pa.table({c: [] for c in COLUMNS})
            meta = {
                b"medsafetybench.evaluation.provenance": json.dumps(run.provenance, sort_keys=True).encode(),
                b"medsafetybench.settings": json.dumps(run.settings, sort_keys=True).encode(),
            }
            pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(records)
