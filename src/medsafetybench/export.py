"""Exports of a run: JSONL, CSV and Parquet views of the store, one row per item, written atomically
(a temporary file renamed into place, so a failed export leaves no partial file)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from .errors import UserError, require
from .store import RunRow, Store

FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = ("run_id", "item_id", "split", "source", "principle", "policy", "request", "response", "score",
           "reason", "judge_raw", "response_prompt_tokens", "response_completion_tokens")


def _record(run_id: str, r: RunRow) -> dict:
    return {"run_id": run_id, "item_id": r.item_id, "split": r.split, "source": r.source,
            "principle": r.principle, "policy": r.policy, "request": r.request, "response": r.response,
            "score": r.score, "reason": r.reason, "judge_raw": r.judge_raw,
            "response_prompt_tokens": r.prompt_tokens, "response_completion_tokens": r.completion_tokens}


def format_for(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the export format of '{path}': use --format {'|'.join(FORMATS)}")
    return fmt


def export_run(store: Store, run_id: str, out: str | Path, fmt: str | None = None) -> int:
    """Write every item of the run to `out`; returns the number of rows."""
    out = Path(out)
    fmt = format_for(out, fmt)
    run_id = store.run(run_id).id
    records = [_record(run_id, r) for r in store.run_rows(run_id)]
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
            pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(records)
