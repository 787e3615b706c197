"""The batches a run has sent to a provider, in the project store (tables `batches`, `batch_requests`).

A batch is written here, with every request it holds, in one transaction *before* anything is uploaded
(`prepare`), and its provider id right after the provider returns it (`set_remote`). So whatever moment a
process dies at, a re-run finds the batch: `open_batches` are those not yet collected, and the runner
resumes polling them instead of paying for the same requests again.

States: `preparing` (rows written, nothing known to be at the provider yet), `submitted` (the provider
has it), `collected` (its results are stored, failures handed back), `abandoned` (a preparing batch the
provider never got). `remote_status` is the provider's own word (`in_progress`, `completed`, `expired`,
`cancelled`, `ended`, ...). Request rows are `pending`, `done` (the result is stored under its key) or
`failed` (with the error; the runner retries it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UserError
from ..models.base import ChatRequest, GenerationConfig, Message
from ..store import Store

OPEN_STATES = ("preparing", "submitted")


@dataclass(frozen=True)
class BatchRecord:
    """One batch as the store holds it."""

    id: str
    """Local id (written before the upload)."""
    provider: str
    """`openai` or `anthropic`."""
    model_identity: str
    """The model (or judge backend) identity: a spec that rebuilds the client."""
    remote_id: str | None
    """The provider's batch id (None until the provider returned it)."""
    state: str
    remote_status: str | None
    n_requests: int
    round: int
    """0 for a first batch, 1.. for batches retrying what failed."""
    created_at: float
    updated_at: float
    note: str = ""


_COLS = "id, provider, model_identity, remote_id, state, remote_status, n_requests, round, created_at, updated_at, note"


def request_from_json(text: str) -> ChatRequest:
    """A `ChatRequest` from its stored JSON (`ChatRequest.to_dict`)."""
    d = json.loads(text)
    return ChatRequest(tuple(Message(m["role"], m["content"]) for m in d["messages"]), GenerationConfig(**d["config"]))


class BatchStore:
    """Batch bookkeeping over an open `Store` (every write is its own transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def prepare(
        self, provider: str, model_identity: str, requests: Sequence[tuple[str, ChatRequest]], round_: int = 0
    ) -> str:
        """Record a batch about to be uploaded and its requests (custom id = content key); returns its id."""
        local_id = uuid.uuid4().hex[:16]
        now = time.time()
        with self.store.transaction() as c:
            c.execute(
                f"INSERT INTO batches ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (local_id, provider, model_identity, None, "preparing", None, len(requests), round_, now, now, ""),
            )
            c.executemany(
                "INSERT INTO batch_requests (batch_id, custom_id, request) VALUES (?,?,?)",
                [(local_id, key, json.dumps(req.to_dict(), ensure_ascii=False)) for key, req in requests],
            )
        return local_id

    def set_remote(self, local_id: str, remote_id: str, status: str | None, input_file_id: str | None = None) -> None:
        """The provider accepted the batch under `remote_id`."""
        with self.store.transaction() as c:
            c.execute(
                "UPDATE batches SET remote_id=?, input_file_id=?, state='submitted', remote_status=?, "
                "updated_at=? WHERE id=?",
                (remote_id, input_file_id, status, time.time(), local_id),
            )

    def set_status(self, local_id: str, status: str, note: str | None = None) -> None:
        with self.store.transaction() as c:
            c.execute(
                "UPDATE batches SET remote_status=?, note=COALESCE(?, note), updated_at=? WHERE id=?",
                (status, note, time.time(), local_id),
            )

    def close(self, local_id: str, state: str = "collected", note: str | None = None) -> None:
        """The batch needs no more polling (`collected` or `abandoned`)."""
        with self.store.transaction() as c:
            c.execute(
                "UPDATE batches SET state=?, note=COALESCE(?, note), updated_at=? WHERE id=?",
                (state, note, time.time(), local_id),
            )

    def mark(self, local_id: str, custom_ids: Sequence[str], state: str, error: str | None = None) -> None:
        """Set request rows `done` or `failed`."""
        with self.store.transaction() as c:
            c.executemany(
                "UPDATE batch_requests SET state=?, error=? WHERE batch_id=? AND custom_id=?",
                [(state, error, local_id, cid) for cid in custom_ids],
            )

    def open_batches(self, model_identity: str | None = None) -> list[BatchRecord]:
        """Batches not yet collected, oldest first (of one model identity when given)."""
        sql = f"SELECT {_COLS} FROM batches WHERE state IN ('preparing', 'submitted')"
        args: tuple = ()
        if model_identity is not None:
            sql += " AND model_identity=?"
            args = (model_identity,)
        return [BatchRecord(*r) for r in self.conn.execute(sql + " ORDER BY created_at", args)]

    def all_batches(self) -> list[BatchRecord]:
        return [BatchRecord(*r) for r in self.conn.execute(f"SELECT {_COLS} FROM batches ORDER BY created_at")]

    def requests(self, local_id: str) -> dict[str, ChatRequest]:
        """custom id -> request, for every request of the batch."""
        return {
            cid: request_from_json(text)
            for cid, text in self.conn.execute(
                "SELECT custom_id, request FROM batch_requests WHERE batch_id=? ORDER BY rowid", (local_id,)
            )
        }

    def request_states(self, local_id: str) -> dict[str, str]:
        return dict(self.conn.execute("SELECT custom_id, state FROM batch_requests WHERE batch_id=?", (local_id,)))

    def find(self, ref: str) -> BatchRecord:
        """A batch by local id, provider id or a unique prefix of either."""
        like = ref.replace("%", "").replace("_", r"\_") + "%"
        rows = self.conn.execute(
            f"SELECT {_COLS} FROM batches WHERE id=? OR remote_id=? OR id LIKE ? ESCAPE '\\' "
            "OR remote_id LIKE ? ESCAPE '\\'",
            (ref, ref, like, like),
        ).fetchall()
        exact = [r for r in rows if ref in (r[0], r[3])]
        if exact or len(rows) == 1:
            return BatchRecord(*(exact or rows)[0])
        if rows:
            raise UserError(f"batch '{ref}' is ambiguous ({len(rows)} batches match): give more characters")
        raise UserError(f"no batch '{ref}' in {self.store.path}: list them with `medsafety batches`")
