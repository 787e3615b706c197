"""The Anthropic Messages API and Message Batches on the fake server, for the `anthropic:` backend's tests.

`FakeAnthropic(server, engine)` plugs into a `fake_openai.FakeOpenAIServer` (its `routes`; not imported
here, so the server's command line can import this module) and serves, at the
server's root (`anthropic:MODEL@http://127.0.0.1:PORT`: the SDK adds `/v1/...` itself):

    POST /v1/messages                        a Messages API reply from the server's responder, with the
                                             server's faults and counters (the system text is shown to
                                             the responder as a system message)
    POST /v1/messages/batches                create a Message Batch (`requests`: custom_id + params)
    GET  /v1/messages/batches                list batches
    GET  /v1/messages/batches/{id}           retrieve (each call is one poll)
    GET  /v1/messages/batches/{id}/results   the results as JSONL (once the batch has ended)
    POST /v1/messages/batches/{id}/cancel    cancel

Batches run on `fake_batches.BatchEngine`, so `BatchFaults` (failed lines, expiry, cancellation, never
finishing, cut-short result lines) apply as they do to OpenAI batches.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from .fake_batches import BatchEngine, BatchFaults, FakeBatch


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def to_chat(req: dict[str, Any]) -> dict[str, Any]:
    """A Messages API body as the chat-shaped request the responders read."""
    messages = list(req["messages"])
    system = req.get("system")
    if isinstance(system, list):  # content blocks
        system = "".join(b.get("text", "") for b in system if isinstance(b, dict))
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    return {**req, "messages": messages, "max_tokens": req.get("max_tokens")}


def message_body(req: dict[str, Any], text: str) -> bytes:
    """A Messages API reply for the chat-shaped request `req`, tokens counted as words (as the OpenAI fake
    counts them), cut at `max_tokens` words with stop reason `max_tokens`."""
    words, stop = text.split(), "end_turn"
    limit = req.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and len(words) > limit:
        text, words, stop = " ".join(words[:limit]), words[:limit], "max_tokens"
    prompt = sum(len(str(m.get("content", "")).split()) for m in req["messages"])
    return json.dumps(
        {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": str(req.get("model", "fake-model")),
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": len(words)},
        },
        ensure_ascii=False,
    ).encode("utf-8")


class FakeAnthropic:
    """Anthropic routes on a `FakeOpenAIServer` (see the module docstring)."""

    def __init__(self, server: Any, engine: BatchEngine | None = None, faults: BatchFaults | None = None) -> None:
        self.server = server
        self.engine = engine or BatchEngine(faults)
        server.routes.append(self)

    @property
    def base_url(self) -> str:
        """What `anthropic:MODEL@...` takes: the server root."""
        return self.server.base_url.removesuffix("/v1")

    def handle(self, h: Any, method: str, route: str, raw: bytes) -> bool:
        parts = route.strip("/").split("/")
        if parts[:2] != ["v1", "messages"]:
            return False
        if method == "POST" and len(parts) == 2:
            self.server._handle_chat(h, raw, adapt=to_chat, render=message_body)
            return True
        if parts[2:3] != ["batches"]:
            return False
        if method == "POST" and len(parts) == 3:
            self._create(h, raw)
        elif method == "GET" and len(parts) == 3:
            data = [
                self._json(b)
                for b in sorted(self.engine.batches.values(), key=lambda b: -b.created)
                if b.provider == "anthropic"
            ]
            h._send(
                200,
                json.dumps(
                    {
                        "data": data,
                        "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                    }
                ).encode(),
            )
        elif method == "GET" and len(parts) == 4:
            self._reply(h, self.engine.poll(parts[3], self._answer), parts[3])
        elif method == "GET" and len(parts) == 5 and parts[4] == "results":
            self._results(h, parts[3])
        elif method == "POST" and len(parts) == 5 and parts[4] == "cancel":
            self._reply(h, self.engine.cancel(parts[3]), parts[3])
        else:
            return False
        return True

    def _reply(self, h: Any, b: FakeBatch | None, batch_id: str) -> None:
        if b is None:
            h._send_error_json(404, f"no message batch {batch_id}")
        else:
            h._send(200, json.dumps(self._json(b)).encode())

    def _create(self, h: Any, raw: bytes) -> None:
        try:
            requests = [(str(r["custom_id"]), r["params"]) for r in json.loads(raw)["requests"]]
            if not requests or len({c for c, _ in requests}) != len(requests):
                raise ValueError("empty or duplicate custom_id")
        except (ValueError, KeyError, TypeError) as exc:
            h._send_error_json(400, f"invalid message batch: {exc}")
            return
        h._send(200, json.dumps(self._json(self.engine.create("anthropic", requests))).encode())

    def _answer(self, params: dict) -> tuple[bool, Any]:
        try:
            chat = to_chat(params)
            return True, json.loads(message_body(chat, self.server.responder(chat)))
        except Exception as exc:  # noqa: BLE001 - a responder's Reject or a bad body is an errored result
            return False, str(exc)

    def _results(self, h: Any, batch_id: str) -> None:
        b = self.engine.batches.get(batch_id)
        if b is None or b.ended is None:
            h._send_error_json(404 if b is None else 400, f"message batch {batch_id} has no results yet")
            return
        self.engine.downloaded()
        bad = b.faults.malformed_lines if b.faults else 0
        lines = []
        for cid, outcome, payload in b.results:
            if outcome == "ok":
                result: dict[str, Any] = {"type": "succeeded", "message": payload}
            elif outcome == "failed":
                result = {
                    "type": "errored",
                    "error": {"type": "error", "error": {"type": "api_error", "message": str(payload)}},
                }
            else:
                result = {"type": "expired" if outcome == "expired" else "canceled"}
            line = json.dumps({"custom_id": cid, "result": result})
            if bad > 0 and outcome == "ok":
                line, bad = line[: len(line) // 2], bad - 1
            lines.append(line)
        h._send(200, ("\n".join(lines) + "\n").encode(), {"Content-Type": "application/binary"})

    def _json(self, b: FakeBatch) -> dict:
        with self.engine.lock:
            c = b.counts()
            ended = b.ended is not None
            processing = len(b.requests) - len(b.results)
            status = "ended" if ended else ("canceling" if b.state == "cancelling" else "in_progress")
            return {
                "id": b.id,
                "type": "message_batch",
                "processing_status": status,
                "request_counts": {
                    "processing": processing,
                    "succeeded": c["ok"],
                    "errored": c["failed"],
                    "canceled": c["cancelled"],
                    "expired": c["expired"],
                },
                "created_at": _iso(b.created),
                "expires_at": _iso(b.created + 86400),
                "ended_at": _iso(b.ended),
                "archived_at": None,
                "cancel_initiated_at": _iso(b.ended) if b.state == "cancelled" else None,
                "results_url": f"{self.base_url}/v1/messages/batches/{b.id}/results" if ended else None,
            }
