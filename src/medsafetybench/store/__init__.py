"""The run store: one SQLite file (WAL) per project directory holding every run, response and judgement.

Responses are keyed by content (model identity + messages + generation settings) and judgements by
(judge identity incl. prompt version + policy + request + response), so the same call is never paid
for twice, across runs and across processes. Every result is written in its own transaction the moment
it exists: a run killed at any instant (even SIGKILL) leaves only whole rows, and re-running the same
command makes only the calls that are missing. API keys never reach this file: identities are built
from secret-free specs.

A run is one model asked one item set under one set of settings: its key is (model identity, settings,
items, kind), see `pipeline.run_id_for`; any number of judges attach to it (`run_judges`), the first
being its primary judge. A run's names never change behind the user's back: the first name given is the
one shown (`runs.name`), and a later, different name for the same run becomes an alias (`run_names`);
every name and alias finds the run. Only `rename_run` (`medsafety runs --rename`) changes the shown name. The schema
is versioned per component and migrated
forward at open (`medsafetybench.store.migrations`); a file written by a newer medsafetybench is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..judging.base import JudgeCase, Judgement, JudgeSpec
from ..models.base import ChatRequest, Completion, Usage
from .migrations import NewerStoreError, items_digest, latest_versions, migrate, settings_digest

SCHEMA_VERSION = latest_versions()["core"]
DEFAULT_PROJECT_DIR = "medsafety-runs"
DB_NAME = "medsafety.db"
RUN_KINDS = ("safety", "overrefusal")
_CHUNK = 500  # keys per IN (...) query


@dataclass(frozen=True)
class RunInfo:
    """A run: one model asked one item set under one set of settings, with the judges attached to it."""

    id: str
    created_at: float
    updated_at: float
    model_spec: str
    """The secret-free spec the user typed."""
    model_identity: str
    """The model and everything that changes its outputs (weights fingerprint, adapter, prompt format)."""
    judge_identity: str
    """The primary judge: the first attached (what `show`, `runs` and reports use by default)."""
    settings: dict
    n_items: int
    name: str | None = None
    """A short name the user gave (`--name`, or a study's model name)."""
    tags: tuple[str, ...] = ()
    kind: str = "safety"
    """`safety` (harmful requests, judged) or `overrefusal` (benign questions, refusal-detected)."""
    items_digest: str | None = None
    """Digest of the item set (ids, requests, policies): runs compare only when it matches."""
    settings_digest: str | None = None
    """Digest of `settings`."""
    provenance: dict = field(default_factory=dict)
    """Package version, data commit and file digests, prompt versions at creation."""
    judges: tuple[str, ...] = ()
    """Every judge identity attached to the run, in the order attached."""
    aliases: tuple[str, ...] = ()
    """Other names given to the same run later (each finds it, as its name does), oldest first."""

    @property
    def label(self) -> str:
        """How the run is named for people: its name, else its spec without the endpoint URL."""
        return self.name or self.model_spec.split("@", 1)[0]


@dataclass(frozen=True)
class RunRow:
    """One item of a run with whatever exists so far of its response and one judge's judgement."""

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
    value: float | None = None
    label: str | None = None
    harmful: bool | None = None
    categories: tuple[str, ...] = ()


def project_dir(project: str | Path | None = None) -> Path:
    """The project directory: the one given, else $MEDSAFETY_PROJECT, else ./medsafety-runs.

    Raises:
        UserError: the path exists and is not a folder (a file given as --project).
    """
    path = Path(project or os.environ.get("MEDSAFETY_PROJECT") or DEFAULT_PROJECT_DIR)
    if path.exists() and not path.is_dir():
        raise UserError(
            f"--project {path} is a file, not a folder: pass a folder for the run store (it is created when missing)"
        )
    return path


def project_db_path(project: str | Path | None = None) -> Path:
    return project_dir(project) / DB_NAME


def _chunks(keys: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield list(keys[i : i + _CHUNK])


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
            self.migrated = migrate(self.conn)
        except NewerStoreError as exc:
            self.conn.close()
            raise UserError(
                f"{self.path} was written by a newer medsafetybench ({exc}): upgrade medsafetybench "
                "or use another --project"
            ) from None
        except (sqlite3.DatabaseError, OSError) as exc:
            raise UserError(
                f"cannot open the run store {self.path}: {exc}; pass --project to use another directory"
            ) from None

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
        (medical QA, fine-tuning, generation) keep their own tables in the same file and write through this.
        A `transaction()` opened inside another joins it: everything commits or rolls back with the outer one."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- runs -------------------------------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        *,
        model_spec: str,
        model_identity: str,
        settings: dict,
        items: Iterable[dict],
        judge_identity: str | None = None,
        judge_spec: JudgeSpec | None = None,
        name: str | None = None,
        kind: str = "safety",
        provenance: dict | None = None,
    ) -> bool:
        """Record a run and its items (a snapshot: id, principle, source, request, response key), and
        attach `judge_identity` when given. Returns False when the run already exists (the same evaluation
        asked again); a name given then is added by `add_run_name` (an alias when the run has a name)."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind {kind!r} is not one of {RUN_KINDS}")
        now = time.time()
        items = list(items)
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
                c.execute("UPDATE runs SET updated_at=? WHERE id=?", (now, run_id))
                created = False
            else:
                rows = [
                    (
                        run_id,
                        it["id"],
                        pos,
                        it.get("split"),
                        it.get("source"),
                        it.get("principle"),
                        it.get("policy") or "medical",
                        it["request"],
                        it.get("safe_response"),
                        it["response_key"],
                    )
                    for pos, it in enumerate(items)
                ]
                digest = items_digest((r[1], r[7], r[6]) for r in rows)
                c.execute(
                    """INSERT INTO runs (id, created_at, updated_at, model_spec, model_identity, judge_identity,
                             settings, n_items, name, tags, kind, items_digest, settings_digest, provenance)
                             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                    (
                        run_id,
                        now,
                        now,
                        model_spec,
                        model_identity,
                        judge_identity or "",
                        json.dumps(settings, sort_keys=True),
                        len(rows),
                        name,
                        "[]",
                        kind,
                        digest,
                        settings_digest(settings),
                        json.dumps(provenance or {}, sort_keys=True),
                    ),
                )
                c.executemany(
                    """INSERT INTO run_items (run_id, item_id, position, split, source, principle, policy,
                                 request, safe_response, response_key) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                    rows,
                )
                if name:
                    c.execute("INSERT INTO run_names VALUES (?,?,?)", (name, run_id, now))
                created = True
        if judge_identity:
            self.add_run_judge(run_id, judge_identity, judge_spec)
        return created

    def add_run_name(self, run_id: str, name: str) -> str:
        """Give a run a name: its shown name when it has none ("name"), else an alias ("alias"); "known"
        when the run already carries that name. A name never moves away from a run it was given to."""
        with self.transaction() as c:
            (current,) = c.execute("SELECT name FROM runs WHERE id=?", (run_id,)).fetchone()
            known = c.execute("SELECT 1 FROM run_names WHERE name=? AND run_id=?", (name, run_id)).fetchone()
            if current == name or known:
                return "known"
            c.execute("INSERT INTO run_names VALUES (?,?,?)", (name, run_id, time.time()))
            if current is None:
                c.execute("UPDATE runs SET name=? WHERE id=?", (name, run_id))
                return "name"
            return "alias"

    def find_run(
        self,
        *,
        model_identity: str,
        settings: dict,
        items_digest_: str,
        kind: str = "safety",
        prefer_judge: str | None = None,
    ) -> str | None:
        """An existing run that asked this model the same items under the same settings (runs written by
        0.1.0 have ids that include their judge, so there may be several: the one judged by `prefer_judge`
        wins, else the newest)."""
        rows = self.conn.execute(
            "SELECT id, judge_identity FROM runs WHERE model_identity=? AND settings_digest=? AND items_digest=? "
            "AND kind=? ORDER BY created_at DESC",
            (model_identity, settings_digest(settings), items_digest_, kind),
        ).fetchall()
        for run_id, judge in rows:
            if prefer_judge and judge == prefer_judge:
                return run_id
        return rows[0][0] if rows else None

    def add_run_judge(self, run_id: str, judge_identity: str, spec: JudgeSpec | None = None) -> bool:
        """Attach a judge to a run (the first one becomes its primary judge). False if already attached;
        a spec given later fills one that was unknown."""
        with self.transaction() as c:
            (position,) = c.execute("SELECT COUNT(*) FROM run_judges WHERE run_id=?", (run_id,)).fetchone()
            cur = c.execute(
                "INSERT OR IGNORE INTO run_judges VALUES (?,?,?,?,?)",
                (
                    run_id,
                    judge_identity,
                    json.dumps(spec.to_dict() if spec else {}, sort_keys=True),
                    position,
                    time.time(),
                ),
            )
            if cur.rowcount == 0 and spec is not None:
                c.execute(
                    "UPDATE run_judges SET spec=? WHERE run_id=? AND judge_identity=? AND spec='{}'",
                    (json.dumps(spec.to_dict(), sort_keys=True), run_id, judge_identity),
                )
            if position == 0 and cur.rowcount == 1:
                c.execute("UPDATE runs SET judge_identity=? WHERE id=?", (judge_identity, run_id))
            return cur.rowcount == 1

    def run_judges(self, run_id: str) -> list[tuple[str, JudgeSpec | None]]:
        """The judges attached to a run, primary first, with the spec that rebuilds each (when known)."""
        out = []
        for identity, spec in self.conn.execute(
            "SELECT judge_identity, spec FROM run_judges WHERE run_id=? ORDER BY position", (run_id,)
        ):
            d = json.loads(spec)
            out.append((identity, JudgeSpec.from_dict(d) if d.get("spec") else None))
        return out

    def run_judge_identity(self, run_id: str, name: str) -> str:
        """The identity of the run's judge that `name` names: a stored identity, or any spelling `--judge`
        accepts for the judge the run was judged with (`offline-v2`, `openai:MODEL@URL`, ...).

        Args:
            run_id: a run id (not a prefix).
            name: what the user typed to `--judge`.

        Returns:
            The judge identity, as the judgements are keyed.

        Raises:
            UserError: the run has no judge by that name (the message lists its judges).
        """
        from ..judging.registry import judge_identity_prefix, judge_spec_key

        judges = self.run_judges(run_id)
        name = name.strip()
        if not judges:  # a run with no judge recorded: the judgements say
            return name
        for identity, _ in judges:
            if identity == name:
                return identity
        prefix = judge_identity_prefix(name)  # a versioned judge: its identities say which version judged
        family = [identity for identity, _ in judges if prefix is not None and identity.startswith(prefix)]
        if len(family) == 1:
            return family[0]
        try:
            key = judge_spec_key(name) if prefix is None else None  # a versioned judge is matched by identity only
        except UserError:
            key = None
        matches = []
        for identity, spec in judges:
            if key is None or spec is None:
                continue
            try:
                if judge_spec_key(spec.spec) == key:
                    matches.append(identity)
            except UserError:
                continue
        if len(matches) == 1:
            return matches[0]
        listed = "; ".join(f"{spec.spec if spec else '?'} = {identity}" for identity, spec in judges) or "-"
        raise UserError(f"run {run_id} has no judgements by '{name}'; its judges: {listed}")

    def touch_run(self, run_id: str) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET updated_at=? WHERE id=?", (time.time(), run_id))

    def run(self, ref: str) -> RunInfo:
        """The run with this id, else the single run whose id starts with it, else the newest run with
        this name."""
        rows = (
            self.conn.execute(
                f"SELECT {_RUN_COLS} FROM runs WHERE id LIKE ? ORDER BY created_at",
                (ref.replace("%", "").replace("_", "") + "%",),
            ).fetchall()
            if ref
            else []
        )
        exact = [r for r in rows if r[0] == ref]
        if exact or len(rows) == 1:
            return self._run_info((exact or rows)[0])
        if len(rows) > 1:
            raise UserError(f"run id '{ref}' is ambiguous ({len(rows)} runs start with it): give more characters")
        named = self.conn.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE name=? OR id IN (SELECT run_id FROM run_names WHERE name=?) "
            "ORDER BY created_at DESC",
            (ref, ref),
        ).fetchone()
        if named:
            return self._run_info(named)
        raise UserError(f"no run '{ref}' in {self.path}: list runs with `medsafety runs`")

    def runs(self, *, kind: str | None = None, tag: str | None = None) -> list[RunInfo]:
        """Every run, oldest first; optionally only one kind, or only runs carrying a tag."""
        infos = [self._run_info(r) for r in self.conn.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY created_at")]
        return [i for i in infos if (kind is None or i.kind == kind) and (tag is None or tag in i.tags)]

    def set_run_fields(self, run_id: str, *, name: str | None = None, tags: Sequence[str] | None = None) -> None:
        """Rename a run (its shown name; "" removes it; aliases stay) or replace its tags."""
        with self.transaction() as c:
            if name is not None:
                c.execute(
                    "DELETE FROM run_names WHERE run_id=? AND name=(SELECT name FROM runs WHERE id=?)", (run_id, run_id)
                )
                c.execute("UPDATE runs SET name=? WHERE id=?", (name or None, run_id))
                if name:
                    c.execute("INSERT OR IGNORE INTO run_names VALUES (?,?,?)", (name, run_id, time.time()))
            if tags is not None:
                c.execute("UPDATE runs SET tags=? WHERE id=?", (json.dumps(sorted(set(tags))), run_id))

    def delete_run(self, run_id: str) -> None:
        """Forget a run (its items and judge links). Responses and judgements stay cached by content, so
        asking the same evaluation again costs no calls."""
        with self.transaction() as c:
            c.execute("DELETE FROM run_judges WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM run_names WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM run_items WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def _run_info(self, r: tuple) -> RunInfo:
        judges = tuple(
            j
            for (j,) in self.conn.execute(
                "SELECT judge_identity FROM run_judges WHERE run_id=? ORDER BY position", (r[0],)
            )
        )
        aliases = tuple(
            n
            for (n,) in self.conn.execute(
                "SELECT name FROM run_names WHERE run_id=? AND name IS NOT ? ORDER BY added_at, name", (r[0], r[8])
            )
        )
        return RunInfo(
            id=r[0],
            created_at=r[1],
            updated_at=r[2],
            model_spec=r[3],
            model_identity=r[4],
            judge_identity=r[5],
            settings=json.loads(r[6]),
            n_items=r[7],
            name=r[8],
            tags=tuple(json.loads(r[9])),
            kind=r[10],
            items_digest=r[11],
            settings_digest=r[12],
            provenance=json.loads(r[13]),
            judges=judges,
            aliases=aliases,
        )

    def run_rows(self, run_id: str, judge_identity: str | None = None) -> list[RunRow]:
        """Every item of the run, in run order, joined to its response and one judge's judgement (the run's
        primary judge unless `judge_identity` is given)."""
        judge_identity = judge_identity or self.run(run_id).judge_identity
        items = self.conn.execute(
            """SELECT ri.item_id, ri.split, ri.source, ri.principle, ri.policy, ri.request, ri.safe_response,
                      ri.response_key, rs.text, rs.prompt_tokens, rs.completion_tokens
               FROM run_items ri LEFT JOIN responses rs ON rs.key = ri.response_key
               WHERE ri.run_id=? ORDER BY ri.position""",
            (run_id,),
        ).fetchall()
        keys = [JudgeCase(r[5], r[8], r[4]).cache_key(judge_identity) if r[8] is not None else None for r in items]
        found = self.judgements([k for k in keys if k])
        out = []
        for r, key in zip(items, keys, strict=True):
            j = found.get(key) if key else None
            out.append(
                RunRow(
                    *r[:8],
                    response=r[8],
                    prompt_tokens=r[9],
                    completion_tokens=r[10],
                    score=j.score if j else None,
                    judged=j is not None,
                    reason=j.reason if j else None,
                    judge_raw=j.raw if j else None,
                    judge_prompt_tokens=j.usage.prompt_tokens if j else None,
                    judge_completion_tokens=j.usage.completion_tokens if j else None,
                    value=j.value if j else None,
                    label=j.label if j else None,
                    harmful=j.harmful if j else None,
                    categories=j.categories if j else (),
                )
            )
        return out

    # --- responses ----------------------------------------------------------------------------------
    def _existing(self, table: str, keys: Iterable[str]) -> set[str]:
        have: set[str] = set()
        for chunk in _chunks(list(dict.fromkeys(keys))):
            have.update(
                k
                for (k,) in self.conn.execute(
                    f"SELECT key FROM {table} WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
            )
        return have

    def missing_responses(self, keys: Iterable[str]) -> set[str]:
        keys = set(keys)
        return keys - self._existing("responses", keys)

    def put_response(self, key: str, model_identity: str, request: ChatRequest, completion: Completion) -> bool:
        """Store a successful completion (with the provider batch that answered it, if any); returns False
        if that key was already stored."""
        if not completion.ok:
            raise ValueError("failed completions are not stored")
        with self.transaction() as c:
            cur = c.execute(
                """INSERT OR IGNORE INTO responses (key, model_identity, request, text, prompt_tokens,
                               completion_tokens, finish_reason, created_at, system_fingerprint, batch_id)
                               VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (
                    key,
                    model_identity,
                    json.dumps(request.to_dict(), ensure_ascii=False),
                    completion.text,
                    completion.usage.prompt_tokens,
                    completion.usage.completion_tokens,
                    completion.finish_reason,
                    time.time(),
                    completion.system_fingerprint,
                    completion.batch,
                ),
            )
            return cur.rowcount == 1

    def response_fingerprints(self, model_identity: str) -> set[str]:
        """Every `system_fingerprint` the server sent with this model's stored responses."""
        return {
            fp
            for (fp,) in self.conn.execute(
                "SELECT DISTINCT system_fingerprint FROM responses WHERE model_identity=? AND system_fingerprint "
                "IS NOT NULL",
                (model_identity,),
            )
        }

    def server_description(self, model_identity: str) -> dict | None:
        """What the server said about this model when the store first met it (`/v1/models`), or None."""
        row = self.conn.execute(
            "SELECT description FROM model_servers WHERE model_identity=?", (model_identity,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def record_server(self, model_identity: str, description: dict) -> None:
        """Keep the server's description of a model the first time; later calls only note the time."""
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO model_servers VALUES (?,?,?,?)",
                (model_identity, json.dumps(description, sort_keys=True), now, now),
            )
            c.execute("UPDATE model_servers SET last_seen=? WHERE model_identity=?", (now, model_identity))

    def response_text(self, key: str) -> str | None:
        row = self.conn.execute("SELECT text FROM responses WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    # --- judgements ---------------------------------------------------------------------------------
    def has_judgements(self, keys: Iterable[str]) -> set[str]:
        return self._existing("judgements", keys)

    def judgements(self, keys: Sequence[str]) -> dict[str, Judgement]:
        """The stored judgements among `keys` (missing keys are absent from the result)."""
        out: dict[str, Judgement] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            for row in self.conn.execute(
                f"SELECT {_JUDGEMENT_COLS} FROM judgements WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[row[0]] = _judgement(row)
        return out

    def put_judgement(self, key: str, judge_identity: str, judgement: Judgement, *, replace: bool = False) -> bool:
        """Store a judgement; returns False if that key was already stored (with `replace`, the stored one is
        overwritten instead, for judges that may change their mind: a person correcting a label)."""
        if judgement.error is not None:
            raise ValueError("judgements that failed to reach the judge are not stored")
        if judgement.score is not None and judgement.score not in (1, 2, 3, 4, 5):
            raise ValueError(f"score {judgement.score!r} is not 1-5")  # OR IGNORE would drop it silently
        harmful = None if judgement.harmful is None else int(bool(judgement.harmful))
        with self.transaction() as c:
            cur = c.execute(
                f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO judgements ({_JUDGEMENT_COLS}, created_at) "
                f"VALUES ({','.join('?' * 14)})",
                (
                    key,
                    judge_identity,
                    judgement.score,
                    judgement.reason,
                    judgement.raw,
                    judgement.attempts,
                    judgement.usage.prompt_tokens,
                    judgement.usage.completion_tokens,
                    judgement.value,
                    judgement.label,
                    harmful,
                    json.dumps(list(judgement.categories)),
                    json.dumps(judgement.metadata, sort_keys=True, ensure_ascii=False),
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    def delete_unscored(self, keys: Iterable[str]) -> int:
        """Forget unscored judgements among `keys` so they are asked again (`--retry-unscored`)."""
        n = 0
        with self.transaction() as c:
            for chunk in _chunks(list(keys)):
                n += c.execute(
                    f"DELETE FROM judgements WHERE score IS NULL AND key IN ({','.join('?' * len(chunk))})", chunk
                ).rowcount
        return n


_RUN_COLS = (
    "id, created_at, updated_at, model_spec, model_identity, judge_identity, settings, n_items, name, "
    "tags, kind, items_digest, settings_digest, provenance"
)
_JUDGEMENT_COLS = (
    "key, judge_identity, score, reason, raw, attempts, prompt_tokens, completion_tokens, value, "
    "label, harmful, categories, metadata"
)


def _judgement(row: tuple) -> Judgement:
    return Judgement(
        row[2],
        reason=row[3],
        raw=row[4],
        attempts=row[5],
        usage=Usage(row[6], row[7]),
        value=row[8],
        label=row[9],
        harmful=None if row[10] is None else bool(row[10]),
        categories=tuple(json.loads(row[11])),
        metadata=json.loads(row[12]),
    )
