"""Batch APIs for the fake server: OpenAI's Files and Batch API, and the engine both providers' batches share.

`FakeBatches(server, faults)` plugs into a `fake_openai.FakeOpenAIServer` (its `routes`; this module does
not import it, so the server's command line can import this one) and serves

    POST /v1/files                 multipart upload (purpose=batch); the JSONL is kept in memory
    GET  /v1/files/{id}/content    the bytes of an uploaded, output or error file
    POST /v1/batches               create a batch from an uploaded file
    GET  /v1/batches               list batches (newest first; `metadata` included, so a client can
                                   find a batch it created before it was killed)
    GET  /v1/batches/{id}          retrieve (each call is one poll)
    POST /v1/batches/{id}/cancel   cancel

`fake_anthropic.FakeAnthropic` serves Message Batches from the same `BatchEngine`. A batch stays
`in_progress` for `faults.polls` retrieves, then ends: every request is answered by the server's
responder (the same replies and usage as a live call). `BatchFaults` injects what real batches do: failed
lines (every `fail_every`-th request answers HTTP 500), a batch that expires or is cancelled part-way
(`end`, `finish_fraction`), one that never finishes (`end="never"`), and output lines cut short
(`malformed_lines`). Faults apply to the first `faulty_batches` batches only, so a retry batch succeeds.

`stats()` counts files, batches created, polls, cancels, downloads and how often each `custom_id` was
submitted, so a test can assert that nothing was paid twice.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

END_STATES = ("completed", "expired", "cancelled", "never")


@dataclass(frozen=True)
class BatchFaults:
    """What goes wrong with the first `faulty_batches` batches (see the module docstring)."""

    fail_every: int = 0
    """Every n-th request of a batch (1-based position; 0: none) fails with HTTP 500."""
    end: str = "completed"
    """How a batch ends: completed, expired (part done, the rest expired), cancelled, never."""
    finish_fraction: float = 0.5
    """With `end` expired or cancelled (or a client's cancel): the share of requests done first."""
    malformed_lines: int = 0
    """This many output lines (the first ones) are cut short, as a broken download would be."""
    polls: int = 1
    """Retrieves that still see the batch in progress before it ends."""
    faulty_batches: int = 1
    """Faults apply to this many batches (the first created); later batches just complete."""

    def __post_init__(self) -> None:
        if self.end not in END_STATES:
            raise ValueError(f"end must be one of {END_STATES}")


@dataclass
class BatchStats:
    files: int = 0
    batches_created: int = 0
    polls: int = 0
    cancels: int = 0
    downloads: int = 0
    submitted: Counter = field(default_factory=Counter)
    """custom_id -> how many batches it was submitted in."""


@dataclass
class FakeBatch:
    """One batch as the fake server keeps it."""

    id: str
    provider: str
    requests: list[tuple[str, dict]]
    faults: BatchFaults | None
    metadata: dict
    created: float
    input_file_id: str | None = None
    polls: int = 0
    state: str = "in_progress"  # in_progress | cancelling | completed | expired | cancelled
    results: list[tuple[str, str, Any]] = field(default_factory=list)
    """(custom_id, outcome ok | failed | expired | cancelled, body or error message)."""
    output_file_id: str | None = None
    error_file_id: str | None = None
    ended: float | None = None

    def counts(self) -> Counter:
        return Counter(outcome for _, outcome, _ in self.results)


class BatchEngine:
    """Batches of both providers: create, poll, cancel, answer; thread-safe."""

    def __init__(self, faults: BatchFaults | None = None) -> None:
        self.faults = faults or BatchFaults()
        self.lock = threading.RLock()
        self.batches: dict[str, FakeBatch] = {}
        self.files: dict[str, bytes] = {}
        self._stats = BatchStats()

    def stats(self) -> BatchStats:
        with self.lock:
            s = self._stats
            return BatchStats(s.files, s.batches_created, s.polls, s.cancels, s.downloads, Counter(s.submitted))

    def add_file(self, data: bytes, prefix: str = "file") -> str:
        fid = f"{prefix}-{uuid.uuid4().hex[:20]}"
        with self.lock:
            self.files[fid] = data
        return fid

    def create(
        self,
        provider: str,
        requests: list[tuple[str, dict]],
        metadata: dict | None = None,
        input_file_id: str | None = None,
    ) -> FakeBatch:
        prefix = "batch" if provider == "openai" else "msgbatch"
        with self.lock:
            self._stats.batches_created += 1
            faulty = self._stats.batches_created <= self.faults.faulty_batches
            for cid, _ in requests:
                self._stats.submitted[cid] += 1
            b = FakeBatch(
                f"{prefix}_{uuid.uuid4().hex[:20]}",
                provider,
                requests,
                self.faults if faulty else None,
                dict(metadata or {}),
                time.time(),
                input_file_id,
            )
            self.batches[b.id] = b
            return b

    def poll(self, batch_id: str, answer: Callable[[dict], tuple[bool, Any]]) -> FakeBatch | None:
        """One retrieve: the batch advances (and may end; `answer(body) -> (ok, reply or error)`)."""
        with self.lock:
            b = self.batches.get(batch_id)
            if b is None:
                return None
            self._stats.polls += 1
            b.polls += 1
            f = b.faults
            if b.state == "cancelling":
                self._end(b, "cancelled", answer)
            elif b.state == "in_progress" and not (f and f.end == "never"):
                if b.polls > (f.polls if f else 1):
                    self._end(b, f.end if f else "completed", answer)
            return b

    def cancel(self, batch_id: str) -> FakeBatch | None:
        with self.lock:
            b = self.batches.get(batch_id)
            if b is None:
                return None
            self._stats.cancels += 1
            if b.state == "in_progress":
                b.state = "cancelling"
            return b

    def downloaded(self) -> None:
        with self.lock:
            self._stats.downloads += 1

    def _end(self, b: FakeBatch, state: str, answer: Callable[[dict], tuple[bool, Any]]) -> None:
        f = b.faults
        fraction = 1.0 if state == "completed" else (f.finish_fraction if f else 0.5)
        n_done = int(len(b.requests) * fraction)
        for pos, (cid, body) in enumerate(b.requests, start=1):
            if pos > n_done:
                b.results.append((cid, "expired" if state == "expired" else "cancelled", None))
            elif f and f.fail_every and pos % f.fail_every == 0:
                b.results.append((cid, "failed", "injected batch line failure"))
            else:
                ok, reply = answer(body)
                b.results.append((cid, "ok" if ok else "failed", reply))
        b.state, b.ended = state, time.time()


class FakeBatches:
    """OpenAI's Files and Batch API on a `FakeOpenAIServer` (see the module docstring)."""

    def __init__(self, server: Any, faults: BatchFaults | None = None, engine: BatchEngine | None = None) -> None:
        self.server = server
        self.engine = engine or BatchEngine(faults)
        server.routes.append(self)

    def stats(self) -> BatchStats:
        return self.engine.stats()

    # -- routing ---------------------------------------------------------------------------------
    def handle(self, h: Any, method: str, route: str, raw: bytes) -> bool:
        parts = route.strip("/").split("/")
        if parts[:2] == ["v1", "files"]:
            if method == "POST" and len(parts) == 2:
                self._upload(h, raw)
            elif method == "GET" and len(parts) == 4 and parts[3] == "content":
                data = self.engine.files.get(parts[2])
                if data is None:
                    h._send_error_json(404, f"no file {parts[2]}")
                else:
                    self.engine.downloaded()
                    h._send(200, data, {"Content-Type": "application/octet-stream"})
            else:
                return False
            return True
        if parts[:2] != ["v1", "batches"]:
            return False
        if method == "POST" and len(parts) == 2:
            self._create(h, raw)
        elif method == "GET" and len(parts) == 2:
            data = [
                self._batch_json(b)
                for b in sorted(self.engine.batches.values(), key=lambda b: -b.created)
                if b.provider == "openai"
            ]
            h._send(
                200,
                json.dumps(
                    {
                        "object": "list",
                        "data": data,
                        "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                    }
                ).encode(),
            )
        elif method == "GET" and len(parts) == 3:
            b = self.engine.poll(parts[2], self._answer)
            self._reply(h, b, parts[2])
        elif method == "POST" and len(parts) == 4 and parts[3] == "cancel":
            self._reply(h, self.engine.cancel(parts[2]), parts[2])
        else:
            return False
        return True

    def _reply(self, h: Any, b: FakeBatch | None, batch_id: str) -> None:
        if b is None:
            h._send_error_json(404, f"no batch {batch_id}")
        else:
            h._send(200, json.dumps(self._batch_json(b)).encode())

    # -- endpoints -------------------------------------------------------------------------------
    def _upload(self, h: Any, raw: bytes) -> None:
        ctype = h.headers.get("Content-Type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
        )
        fields: dict[str, bytes] = {}
        filename = "upload.jsonl"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = part.get_payload(decode=True) or b""
            if name == "file":
                filename = part.get_filename() or filename
        if fields.get("purpose") != b"batch" or "file" not in fields:
            h._send_error_json(400, "a file upload needs purpose=batch and a file")
            return
        fid = self.engine.add_file(fields["file"])
        with self.engine.lock:
            self.engine._stats.files += 1
        h._send(
            200,
            json.dumps(
                {
                    "id": fid,
                    "object": "file",
                    "bytes": len(fields["file"]),
                    "created_at": int(time.time()),
                    "filename": filename,
                    "purpose": "batch",
                    "status": "processed",
                }
            ).encode(),
        )

    def _create(self, h: Any, raw: bytes) -> None:
        try:
            req = json.loads(raw)
            data = self.engine.files[req["input_file_id"]]
            if req.get("endpoint") != "/v1/chat/completions":
                raise ValueError("endpoint")
            lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
            requests = [(str(x["custom_id"]), x["body"]) for x in lines]
            if len({c for c, _ in requests}) != len(requests):
                raise ValueError("duplicate custom_id")
        except (ValueError, KeyError, TypeError) as exc:
            h._send_error_json(400, f"invalid batch: {exc}")
            return
        b = self.engine.create("openai", requests, req.get("metadata"), req["input_file_id"])
        h._send(200, json.dumps(self._batch_json(b)).encode())

    def _answer(self, body: dict) -> tuple[bool, Any]:
        try:
            return True, json.loads(self.server._completion_body(body, self.server.responder(body)))
        except Exception as exc:  # noqa: BLE001 - a responder's Reject or a bad body is a failed line
            return False, str(exc)

    def _files_for(self, b: FakeBatch) -> None:
        """Write the output and error files of an ended batch (once)."""
        if b.ended is None or b.output_file_id or b.error_file_id:
            return
        out, errors = [], []
        bad = b.faults.malformed_lines if b.faults else 0
        for cid, outcome, payload in b.results:
            rid = f"batch_req_{uuid.uuid4().hex[:16]}"
            if outcome == "ok":
                line = json.dumps(
                    {
                        "id": rid,
                        "custom_id": cid,
                        "error": None,
                        "response": {"status_code": 200, "request_id": rid, "body": payload},
                    }
                )
                if bad > 0:
                    line, bad = line[: len(line) // 2], bad - 1
                out.append(line)
            elif outcome == "failed":
                errors.append(
                    json.dumps(
                        {
                            "id": rid,
                            "custom_id": cid,
                            "error": None,
                            "response": {
                                "status_code": 500,
                                "request_id": rid,
                                "body": {"error": {"message": str(payload), "type": "server_error"}},
                            },
                        }
                    )
                )
            else:
                code = "batch_expired" if outcome == "expired" else "batch_cancelled"
                errors.append(
                    json.dumps(
                        {
                            "id": rid,
                            "custom_id": cid,
                            "response": None,
                            "error": {"code": code, "message": f"request {outcome}"},
                        }
                    )
                )
        if out:
            b.output_file_id = self.engine.add_file(("\n".join(out) + "\n").encode())
        if errors:
            b.error_file_id = self.engine.add_file(("\n".join(errors) + "\n").encode())

    def _batch_json(self, b: FakeBatch) -> dict:
        with self.engine.lock:
            self._files_for(b)
            c = b.counts()
            done = b.ended is not None
            return {
                "id": b.id,
                "object": "batch",
                "endpoint": "/v1/chat/completions",
                "errors": None,
                "input_file_id": b.input_file_id,
                "completion_window": "24h",
                "status": b.state,
                "output_file_id": b.output_file_id,
                "error_file_id": b.error_file_id,
                "created_at": int(b.created),
                "in_progress_at": int(b.created),
                "expires_at": int(b.created) + 86400,
                "completed_at": int(b.ended) if done else None,
                "request_counts": {"total": len(b.requests), "completed": c["ok"], "failed": len(b.results) - c["ok"]},
                "metadata": b.metadata or None,
            }
