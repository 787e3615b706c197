"""The `medqa_scores` table: keys, reading and writing rows, listing stored results, exporting them.

A row is one question's score (harness) or one generation of it (paper: one per seed or branch):
the choice log-likelihoods (`lls`) or the raw reply (`raw`), with `protocol` and `settings` (canonical
JSON of `Protocol.settings()`), added by store migration medqa 2. A row's key hashes what produced it:

* harness: `[identity, task, question id, PROMPT_VERSION, mode, prompt, choices]`, plus
  `["harness", settings]` whenever the settings differ from those of release 0.1.0 (log-likelihood
  without BOS; generation of 64 tokens). Rows 0.1.0 wrote keep their keys and, after the migration,
  their settings (`{"add_bos": false}`), so they answer only `--no-add-bos` and never a BOS query;
* paper: `[identity, task, question id, PAPER_PROMPT_VERSION, mode, rendered prompt, generation
  config, "paper", settings, replicate]`.

A stored result is the rows of one (model identity, protocol, settings, mode): `medqa_runs` lists them
with their accuracies, `export_records` writes per-question JSONL or CSV.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..store import Store
from .protocols import HARNESS, Protocol, protocol_from_row
from .results import GENERATE, LOGLIK, MedQAResult, Record, StoredRow, build_result
from .tasks import PROMPT_VERSION, TASKS, Question

# what release 0.1.0 computed, per harness mode: its rows' settings after migration medqa 2
LEGACY_SETTINGS = {LOGLIK: {"add_bos": False}, GENERATE: {"max_new_tokens": 64}}
EXPORT_FORMATS = ("jsonl", "csv")


def canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, ensure_ascii=False)


def _digest(payload: list) -> str:
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def harness_key(identity: str, task: str, q: Question, mode: str, protocol: Protocol) -> str:
    payload: list[Any] = [identity, task, q.id, PROMPT_VERSION, mode, q.prompt, list(q.choices)]
    settings = protocol.settings(mode)
    if settings != LEGACY_SETTINGS[mode]:
        payload += [HARNESS, canonical(settings)]
    return _digest(payload)


def paper_key(
    identity: str,
    task: str,
    q: Question,
    prompt_version: str,
    prompt: str,
    config: dict,
    protocol: Protocol,
    replicate: int | None,
) -> str:
    return _digest(
        [
            identity,
            task,
            q.id,
            prompt_version,
            GENERATE,
            prompt,
            config,
            protocol.name,
            canonical(protocol.settings(GENERATE)),
            replicate,
        ]
    )


def existing(store: Store, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for s in range(0, len(keys), 500):
        chunk = keys[s : s + 500]
        rows = store.conn.execute(f"SELECT key FROM medqa_scores WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        found.update(r[0] for r in rows)
    return found


@dataclass(frozen=True)
class NewRow:
    key: str
    model_identity: str
    task: str
    question_id: str
    prompt_version: str
    mode: str
    gold: int
    lls: str | None
    raw: str | None
    protocol: str
    settings: str
    replicate: int | None


def put(store: Store, rows: Sequence[NewRow]) -> None:
    """Insert rows in one transaction (a key already there is kept)."""
    if not rows:
        return
    now = time.time()
    cols = [*asdict(rows[0]), "created_at"]
    with store.transaction() as c:
        c.executemany(
            f"INSERT OR IGNORE INTO medqa_scores ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [(*asdict(r).values(), now) for r in rows],
        )


def fetch(store: Store, keys: list[str]) -> list[StoredRow]:
    out = []
    for s in range(0, len(keys), 500):
        chunk = keys[s : s + 500]
        out += [
            StoredRow(t, q, g, json.loads(ll) if ll else None, raw, rep, mode)
            for t, q, g, ll, raw, rep, mode in store.conn.execute(
                "SELECT task, question_id, gold, lls, raw, replicate, mode FROM medqa_scores "
                f"WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
        ]
    return out


# --- stored results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MedQARun:
    """One stored medical QA result: a model under one protocol and settings."""

    model_identity: str
    protocol: str
    settings: dict
    mode: str
    label: str
    tasks: dict[str, int]  # task -> questions scored
    rows: int
    first_at: float
    last_at: float
    macro_acc: float | None
    accuracy: dict[str, float | None]

    def to_dict(self) -> dict:
        return asdict(self)


def _has_table(store: Store) -> bool:
    return (
        store.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='medqa_scores'").fetchone()
        is not None
    )


def stored_rows(store: Store, identities: set[str] | None = None) -> dict[tuple[str, str, str, str], list[StoredRow]]:
    """Rows grouped by (model identity, protocol, settings JSON, mode); the latest row per question and
    replicate wins (prompt changes leave older rows behind). Rows of other prompt versions or of tasks
    this version does not know are skipped."""
    from .paper import PAPER_PROMPT_VERSION

    if not _has_table(store):
        return {}
    latest: dict[tuple, StoredRow] = {}
    for ident, proto, settings, mode, task, qid, gold, lls, raw, rep in store.conn.execute(
        "SELECT model_identity, protocol, settings, mode, task, question_id, gold, lls, raw, replicate "
        "FROM medqa_scores WHERE prompt_version IN (?, ?) ORDER BY created_at",
        (PROMPT_VERSION, PAPER_PROMPT_VERSION),
    ):
        if (identities is not None and ident not in identities) or task not in TASKS:
            continue
        latest[(ident, proto, settings, mode, task, qid, rep)] = StoredRow(
            task, qid, gold, json.loads(lls) if lls else None, raw, rep, mode
        )
    out: dict[tuple[str, str, str, str], list[StoredRow]] = defaultdict(list)
    for (ident, proto, settings, mode, *_), row in latest.items():
        out[(ident, proto, settings, mode)].append(row)
    return dict(out)


def result_from_group(
    key: tuple[str, str, str, str], rows: list[StoredRow], spec: str | None = None, seed: int = 0
) -> MedQAResult:
    ident, proto, settings, mode = key
    return build_result(spec or ident, ident, mode, protocol_from_row(proto, json.loads(settings)), rows, seed=seed)


def medqa_runs(store: Store) -> list[MedQARun]:
    """Every stored medical QA result (model x protocol x settings), oldest first, with accuracies."""
    if not _has_table(store):
        return []
    times = {
        (i, p, s, m): (lo, hi, n)
        for i, p, s, m, lo, hi, n in store.conn.execute(
            "SELECT model_identity, protocol, settings, mode, MIN(created_at), MAX(created_at), COUNT(*) "
            "FROM medqa_scores GROUP BY 1, 2, 3, 4"
        )
    }
    out = []
    for key, rows in stored_rows(store).items():
        res = result_from_group(key, rows)
        lo, hi, n = times[key]
        out.append(
            MedQARun(
                key[0],
                key[1],
                json.loads(key[2]),
                key[3],
                res.label,
                {t.name: t.n_scored for t in res.tasks},
                n,
                lo,
                hi,
                res.macro,
                res.accuracy(),
            )
        )
    return sorted(out, key=lambda r: r.first_at)


# --- export ------------------------------------------------------------------------------------------


def export_records(result: MedQAResult, out: str | Path, fmt: str | None = None) -> int:
    """Write one row per question (per seed/branch under the paper protocol) of `result` to `out`, JSONL or
    CSV (by suffix or `fmt`; CSV cells holding lists or the settings are JSON), atomically; returns the
    number of rows. Columns: model, model_identity, protocol, settings, mode, task, question_id, replicate,
    gold, prediction, correct, valid, lls (harness log-likelihoods), prediction_norm (acc_norm's choice), raw."""
    out = Path(out)
    fmt = (fmt or out.suffix.lstrip(".")).lower()
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"cannot tell the export format of '{out}': name it .jsonl or .csv")
    base = {
        "model": result.model_spec,
        "model_identity": result.model_identity,
        "protocol": result.protocol,
        "settings": result.settings,
        "mode": result.mode,
    }
    records = [{**base, **_record(r)} for r in result.records]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            if fmt == "jsonl":
                for rec in records:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            else:
                w = csv.DictWriter(
                    f, fieldnames=[*base, *_record(Record("", "", None, "", None, False, True, None, None, None))]
                )
                w.writeheader()
                w.writerows(
                    {k: json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v for k, v in rec.items()}
                    for rec in records
                )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(records)


def _record(r: Record) -> dict:
    return {
        "task": r.task,
        "question_id": r.question_id,
        "replicate": r.replicate,
        "gold": r.gold,
        "prediction": r.prediction,
        "correct": r.correct,
        "valid": r.valid,
        "lls": r.lls,
        "prediction_norm": r.prediction_norm,
        "raw": r.raw,
    }
