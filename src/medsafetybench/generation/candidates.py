"""Generated candidates and their provenance, in the project's store (tables `gen_candidates`,
`gen_sightings`, `gen_decisions`).

A candidate is one extracted request for one AMA principle. Its id is a content hash of (principle,
request), so generating the same request again never makes a second row; the first generation's
provenance is kept and `times_seen` counts the distinct replies it appeared in (`gen_sightings`). Each row records
how it was made (method,
generator identity, seed, GCG suffix, prompts version, the cache key of the raw reply), what the
filters said (`filter_status` kept/dropped with reasons and scores), its safe response (with the
writer's identity), and the review: `status` is `pending` until a person accepts, edits (accepted
with the edited text kept beside the original) or rejects it. Every decision is also appended to
`gen_decisions`, so the history of a review survives later changes of mind.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import UserError
from ..store import Store

STATUSES = ("pending", "accepted", "rejected")
STATES = (*STATUSES, "dropped")  # what lists and counts show: a pending candidate the filter dropped is "dropped"
DECISIONS = ("accept", "edit", "reject", "reset")


def candidate_id(principle: int, request: str) -> str:
    norm = " ".join(request.split())
    return hashlib.sha256(f"{principle}\0{norm}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NewCandidate:
    """What a generation method hands to the store."""

    principle: int
    request: str
    method: str  # prompt | prefill | gcg | import
    generator: str  # the generator's identity (secret-free)
    seed: int | None = None
    suffix: str | None = None
    raw_key: str | None = None


@dataclass
class Candidate:
    id: str
    principle: int
    request: str
    method: str
    generator: str
    seed: int | None
    suffix: str | None
    prompts_version: str
    raw_key: str | None
    times_seen: int
    safe_response: str | None
    safe_generator: str | None
    filter_status: str
    filter_reasons: list[str] = field(default_factory=list)
    filter_scores: dict = field(default_factory=dict)
    status: str = "pending"
    edited_request: str | None = None
    edited_safe_response: str | None = None
    reviewer: str | None = None
    reviewed_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def final_request(self) -> str:
        return self.edited_request or self.request

    @property
    def state(self) -> str:
        """The review status, except that a pending candidate the filter dropped is `dropped` (as in `counts`)."""
        return "dropped" if self.status == "pending" and self.filter_status == "dropped" else self.status

    @property
    def final_safe_response(self) -> str | None:
        return self.edited_safe_response or self.safe_response

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_COLS = (
    "id, principle, request, method, generator, seed, suffix, prompts_version, raw_key, times_seen, "
    "safe_response, safe_generator, filter_status, filter_reasons, filter_scores, status, edited_request, "
    "edited_safe_response, reviewer, reviewed_at, created_at, updated_at"
)


def _row(r: tuple) -> Candidate:
    d = dict(zip([c.strip() for c in _COLS.split(",")], r, strict=True))
    d["filter_reasons"] = json.loads(d["filter_reasons"])
    d["filter_scores"] = json.loads(d["filter_scores"])
    return Candidate(**d)


class CandidateStore:
    """Generation's tables in a project `Store` (created on first use)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def add(self, new: Iterable[NewCandidate], prompts_version: str) -> tuple[int, int]:
        """Insert candidates; returns (added, seen before). A request seen again in another reply only
        bumps `times_seen`; the same reply read again (a re-run served from the cache) changes nothing."""
        added = seen = 0
        now = time.time()
        with self.store.transaction() as c:
            for n in new:
                cid = candidate_id(n.principle, n.request)
                if n.raw_key is not None:
                    if c.execute(
                        "SELECT 1 FROM gen_sightings WHERE candidate_id=? AND raw_key=?", (cid, n.raw_key)
                    ).fetchone():
                        continue
                cur = c.execute(
                    "INSERT OR IGNORE INTO gen_candidates (id, principle, request, method, generator, seed, suffix, "
                    "prompts_version, raw_key, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        cid,
                        n.principle,
                        " ".join(n.request.split()),
                        n.method,
                        n.generator,
                        n.seed,
                        n.suffix,
                        prompts_version,
                        n.raw_key,
                        now,
                        now,
                    ),
                )
                if cur.rowcount == 1:
                    added += 1
                else:
                    seen += 1
                    c.execute("UPDATE gen_candidates SET times_seen = times_seen + 1 WHERE id=?", (cid,))
                if n.raw_key is not None:
                    c.execute("INSERT INTO gen_sightings VALUES (?,?)", (cid, n.raw_key))
        return added, seen

    def get(self, cid: str) -> Candidate:
        r = self.conn.execute(f"SELECT {_COLS} FROM gen_candidates WHERE id=?", (cid,)).fetchone()
        if r is None:
            raise UserError(f"no generated candidate '{cid}' in {self.store.path}")
        return _row(r)

    def list(
        self,
        *,
        status: Sequence[str] | None = None,
        principles: Sequence[int] | None = None,
        filter_status: Sequence[str] | None = None,
    ) -> list[Candidate]:
        """Candidates in creation order, optionally restricted by status, principle and filter status."""
        where, args = [], []
        for col, values in (("status", status), ("principle", principles), ("filter_status", filter_status)):
            if values is not None:
                values = list(values)
                where.append(f"{col} IN ({','.join('?' * len(values))})" if values else "0")
                args += values
        sql = f"SELECT {_COLS} FROM gen_candidates"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_row(r) for r in self.conn.execute(sql + " ORDER BY created_at, rowid", args)]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for status, fstatus, n in self.conn.execute(
            "SELECT status, filter_status, COUNT(*) FROM gen_candidates GROUP BY status, filter_status"
        ):
            out["dropped" if fstatus == "dropped" and status == "pending" else status] += n
        return out

    def set_filter(self, results: Iterable[tuple[str, str, list[str], dict]]) -> None:
        """(id, 'kept'|'dropped', reasons, scores) for each candidate the filters looked at."""
        now = time.time()
        with self.store.transaction() as c:
            c.executemany(
                "UPDATE gen_candidates SET filter_status=?, filter_reasons=?, filter_scores=?, updated_at=? WHERE id=?",
                [
                    (st, json.dumps(reasons), json.dumps(scores, sort_keys=True), now, cid)
                    for cid, st, reasons, scores in results
                ],
            )

    def set_safe_response(self, cid: str, text: str, generator: str) -> None:
        with self.store.transaction() as c:
            c.execute(
                "UPDATE gen_candidates SET safe_response=?, safe_generator=?, updated_at=? WHERE id=?",
                (text.strip(), generator, time.time(), cid),
            )

    def decide(
        self,
        cid: str,
        decision: str,
        *,
        request: str | None = None,
        safe_response: str | None = None,
        reviewer: str | None = None,
    ) -> Candidate:
        """Record a person's decision at once: accept, edit (accept with edited text), reject, or reset
        (back to pending). Edits keep the original text; blank edits are an error."""
        if decision not in DECISIONS:
            raise UserError(f"decision '{decision}' is unknown; use one of {', '.join(DECISIONS)}")
        cand = self.get(cid)
        edited_req, edited_safe = cand.edited_request, cand.edited_safe_response
        if decision == "edit":
            if request is not None:
                if not request.strip():
                    raise UserError("an edited request must not be blank; reject the candidate instead")
                edited_req = " ".join(request.split()) if request.strip() != cand.request else None
            if safe_response is not None:
                edited_safe = safe_response.strip() or None
                if edited_safe == cand.safe_response:
                    edited_safe = None
        status = {"accept": "accepted", "edit": "accepted", "reject": "rejected", "reset": "pending"}[decision]
        now = time.time()
        with self.store.transaction() as c:
            c.execute(
                "UPDATE gen_candidates SET status=?, edited_request=?, edited_safe_response=?, reviewer=?, "
                "reviewed_at=?, updated_at=? WHERE id=?",
                (status, edited_req, edited_safe, reviewer, None if decision == "reset" else now, now, cid),
            )
            c.execute(
                "INSERT INTO gen_decisions VALUES (?,?,?,?,?,?)", (cid, decision, request, safe_response, reviewer, now)
            )
        return self.get(cid)

    def decisions(self, cid: str) -> list[tuple[str, str | None, str | None, float]]:
        return list(
            self.conn.execute(
                "SELECT decision, request, safe_response, at FROM gen_decisions WHERE candidate_id=? ORDER BY rowid",
                (cid,),
            )
        )
