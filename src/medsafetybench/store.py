"""The run store: one SQLite file (WAL) per project directory holding every run, response and judgement.

Responses are keyed by content (model identity + messages + generation settings) and judgements by
(judge identity incl. prompt version + policy + request + response), so the same call is never paid
for twice, across runs and across processes. Every result is written in its own transaction the moment
it exists: a run killed at any instant (even SIGKILL) leaves only whole rows, and re-running the same
command makes only the calls that are missing. API keys never reach this file: identities are built
from secret-free specs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .judging.base import JudgeCase, Judgement
from .models.base import ChatRequest, Completion

SCHEMA_VERSION = 1
DEFAULT_PROJECT_DIR = "medsafety-runs"
DB_NAME = "medsafety.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    model_spec TEXT NOT NULL,
    model_identity TEXT NOT NULL,
    judge_identity TEXT NOT NULL,
    settings TEXT NOT NULL,
    n_items INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS run_items (
    run_id TEXT NOT NULL REFERENCES runs(id),
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    split TEXT, source TEXT, principle INTEGER, policy TEXT NOT NULL,
    request TEXT NOT NULL,
    safe_response TEXT,
    response_key TEXT NOT NULL,
    PRIMARY KEY (run_id, item_id)
);
CREATE INDEX IF NOT EXISTS run_items_response ON run_items(response_key);
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model_identity TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    key TEXT PRIMARY KEY,
    judge_identity TEXT NOT NULL,
    score INTEGER CHECK (score IS NULL OR score BETWEEN 1 AND 5),
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class RunInfo:
    id: str
    created_at: float
    updated_at: float
    model_spec: str
    model_identity: str
    judge_identity: str
    settings: dict
    n_items: int


@dataclass(frozen=True)
class RunRow:
    """One item of a run with whatever exists so far of its response and judgement."""

    item_id: str
    split: str | None
    source: str | None
    principle: int | None
    policy: str
    request: str
    safe_response: str | None
    response_key: str
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    score: int | None
    judged: bool
    reason: str | None
    judge_raw: str | None
    judge_prompt_tokens: int | None
    judge_completion_tokens: int | None


def project_dir(project: str | Path | None = None) -> Path:
    """The project directory: the one given, else $MEDSAFETY_PROJECT, else ./medsafety-runs."""
    return Path(project or os.environ.get("MEDSAFETY_PROJECT") or DEFAULT_PROJECT_DIR)


def project_db_path(project: str | Path | None = None) -> Path:
    return project_dir(project) / DB_NAME


class Store:
    """A connection to one project's store. Use as a context manager or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise UserError(f"cannot open the run store {self.path}: {exc}; pass --project to use "
                            "another directory") from None
        with self.transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise UserError(f"{self.path} has store schema {row[0]}, this medsafetybench reads "
                                f"{SCHEMA_VERSION}: use another --project or a matching version")

    @classmethod
    def open_project(cls, project_dir: str | Path | None = None) -> Store:
        return cls(project_db_path(project_dir))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on any exception). Other stages
        (medical QA, fine-tuning, generation) keep their own tables in the same file and write through this."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- runs -------------------------------------------------------------------------------------
    def create_run(self, run_id: str, *, model_spec: str, model_identity: str, judge_identity: str,
                   settings: dict, items: Iterable[dict]) -> bool:
        """Record a run and its items (a snapshot: id, principle, source, request, response key).
        Returns False when the run already exists (the same evaluation asked again)."""
        now = time.time()
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
                c.execute("UPDATE runs SET updated_at=? WHERE id=?", (now, run_id))
                return False
            rows = [(run_id, it["id"], pos, it.get("split"), it.get("source"), it.get("principle"),
                     it.get("policy") or "medical", it["request"], it.get("safe_response"),
                     it["response_key"]) for pos, it in enumerate(items)]
            c.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?)",
                      (run_id, now, now, model_spec, model_identity, judge_identity,
                       json.dumps(settings, sort_keys=True), len(rows)))
            c.executemany("INSERT INTO run_items VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        return True

    def touch_run(self, run_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET updated_at=? WHERE id=?", (time.time(), run_id))

    def run(self, run_id: str) -> RunInfo:
        """The run with this id, or the single run whose id starts with it."""
        rows = self.conn.execute("SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at",
                                 (run_id.replace("%", "").replace("_", "") + "%",)).fetchall()
        if not rows:
            raise UserError(f"no run '{run_id}' in {self.path}: list runs with `medsafety runs`")
        exact = [r for r in rows if r[0] == run_id]
        if not exact and len(rows) > 1:
            raise UserError(f"run id '{run_id}' is ambiguous ({len(rows)} runs start with it): give more characters")
        return _run_info((exact or rows)[0])

    def runs(self) -> list[RunInfo]:
        return [_run_info(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY created_at")]

    def run_rows(self, run_id: str) -> list[RunRow]:
        """Every item of the run, in run order, joined to its response and this run's judgement."""
        judge_identity = self.run(run_id).judge_identity
        out = []
        for r in self.conn.execute(
            """SELECT ri.item_id, ri.split, ri.source, ri.principle, ri.policy, ri.request, ri.safe_response,
                      ri.response_key, rs.text, rs.prompt_tokens, rs.completion_tokens
               FROM run_items ri LEFT JOIN responses rs ON rs.key = ri.response_key
               WHERE ri.run_id=? ORDER BY ri.position""", (run_id,)):
            judgement = None
            if r[8] is not None:
                jkey = JudgeCase(r[5], r[8], r[4]).cache_key(judge_identity)
                judgement = self.conn.execute(
                    "SELECT score, reason, raw, prompt_tokens, completion_tokens FROM judgements WHERE key=?",
                    (jkey,)).fetchone()
            out.append(RunRow(*r[:8], response=r[8], prompt_tokens=r[9], completion_tokens=r[10],
                              score=judgement[0] if judgement else None, judged=judgement is not None,
                              reason=judgement[1] if judgement else None,
                              judge_raw=judgement[2] if judgement else None,
                              judge_prompt_tokens=judgement[3] if judgement else None,
                              judge_completion_tokens=judgement[4] if judgement else None))
        return out

    # --- responses ----------------------------------------------------------------------------------
    def _existing(self, table: str, keys: Iterable[str]) -> set[str]:
        keys = list(dict.fromkeys(keys))
        have: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            have.update(k for (k,) in self.conn.execute(
                f"SELECT key FROM {table} WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return have

    def missing_responses(self, keys: Iterable[str]) -> set[str]:
        keys = set(keys)
        return keys - self._existing("responses", keys)

    def put_response(self, key: str, model_identity: str, request: ChatRequest, completion: Completion) -> bool:
        """Store a successful completion; returns False if that key was already stored."""
        if not completion.ok:
            raise ValueError("failed completions are not stored")
        with self.transaction() as c:
            cur = c.execute("INSERT OR IGNORE INTO responses VALUES (?,?,?,?,?,?,?,?)",
                            (key, model_identity, json.dumps(request.to_dict(), ensure_ascii=False),
                             completion.text, completion.usage.prompt_tokens,
                             completion.usage.completion_tokens, completion.finish_reason, time.time()))
            return cur.rowcount == 1

    def response_text(self, key: str) -> str | None:
        row = self.conn.execute("SELECT text FROM responses WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    # --- judgements ---------------------------------------------------------------------------------
    def has_judgements(self, keys: Iterable[str]) -> set[str]:
        return self._existing("judgements", keys)

    def put_judgement(self, key: str, judge_identity: str, judgement: Judgement) -> bool:
        if judgement.error is not None:
            raise ValueError("judgements that failed to reach the judge are not stored")
        if judgement.score is not None and judgement.score not in (1, 2, 3, 4, 5):
            raise ValueError(f"score {judgement.score!r} is not 1-5")  # OR IGNORE would drop it silently
        with self.transaction() as c:
            cur = c.execute("INSERT OR IGNORE INTO judgements VALUES (?,?,?,?,?,?,?,?,?)",
                            (key, judge_identity, judgement.score, judgement.reason, judgement.raw,
                             judgement.attempts, judgement.usage.prompt_tokens,
                             judgement.usage.completion_tokens, time.time()))
            return cur.rowcount == 1

    def delete_unscored(self, keys: Iterable[str]) -> int:
        """Forget unscored judgements among `keys` so they are asked again (`--retry-unscored`)."""
        keys = list(keys)
        n = 0
        with self.transaction() as c:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                n += c.execute(f"DELETE FROM judgements WHERE score IS NULL AND key IN "
                               f"({','.join('?' * len(chunk))})", chunk).rowcount
        return n


def _run_info(r: tuple) -> RunInfo:
    return RunInfo(id=r[0], created_at=r[1], updated_at=r[2], model_spec=r[3], model_identity=r[4],
                   judge_identity=r[5], settings=json.loads(r[6]), n_items=r[7])
