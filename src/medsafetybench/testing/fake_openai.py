"""A fake OpenAI-compatible chat-completions server, stdlib only, for tests, demos and benches.

`FakeOpenAIServer` serves `POST /v1/chat/completions`, `POST /v1/completions` (a text `prompt`; the
responder sees it as one user message) and `GET /v1/models` on 127.0.0.1 over
HTTP/1.1 with keep-alive (one daemon thread per connection). A `responder(request_json) -> str`
decides each reply; a seeded `FaultPlan` injects 429 (with `Retry-After`), 500, 503, slow replies,
malformed JSON bodies and dropped connections. The fault for attempt *n* of a prompt is a pure
function of (seed, prompt key, n), so a run is reproducible whatever the thread interleaving.

Extra route sets plug in through `routes` (`fake_batches.py`: files and batches, `fake_anthropic.py`:
the Anthropic Messages API and Message Batches). Replies come from `responders.py` (canned, echo, rubric,
classifier). With `"logprobs": true` in a chat
request (or `"logprobs": N` in a text completion request), the reply carries deterministic
log-probabilities (`_fake_logprobs`: the first word 0.9), in each endpoint's own shape. Run as a
program it is a server a user can point any OpenAI client at (`fake_cli.py`, `--help`).

What the server says about itself is settable, so a test can restart it "on other weights" under the
same port and model name: `root`, `created`, `owned_by` and `max_model_len` in each `/v1/models`
entry (vLLM's fields), and the `system_fingerprint` of every completion (None: the field is left out).

The server counts everything thread-safely (`stats()`): calls, calls per outcome, and successful
completions per prompt key (`prompt_key(messages)`), so a test can assert that every item completed
exactly once and see how often each was retried.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .responders import Responder, default_responder, echo_responder, rubric_responder

__all__ = [
    "FAULT_KINDS",
    "Attempt",
    "FakeOpenAIServer",
    "FaultPlan",
    "Reject",
    "ServerStats",
    "prompt_key",
    "default_responder",
    "echo_responder",
    "rubric_responder",
]

FAULT_KINDS = ("429", "500", "503", "slow", "malformed", "drop")


class Reject(Exception):
    """Raise from a responder to answer with an HTTP error, e.g. `Reject(400, "bad prompt")`."""

    def __init__(self, status: int, message: str = "rejected") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def prompt_key(messages: list[dict[str, Any]]) -> str:
    """Stable key of a chat: sha256 of its (role, content) list. Match it with `ChatRequest` via
    `prompt_key([{"role": m.role, "content": m.content} for m in request.messages])`."""
    norm = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in messages]
    return hashlib.sha256(json.dumps(norm, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class FaultPlan:
    """Rates (0..1, summed at most 1) of each injected fault, decided per call from `seed`.

    `slow` sleeps `slow_seconds` (longer than the client's timeout) and then answers 504, so it is
    never a success. `first_attempt_fault` (one of FAULT_KINDS) makes the first attempt of every
    distinct prompt fail that way, before the rates apply to later attempts.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    rate_malformed: float = 0.0
    rate_drop: float = 0.0
    retry_after: tuple[float, float] = (0.05, 1.0)
    slow_seconds: float = 2.0
    first_attempt_fault: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        total = sum(self._rates())
        if not 0.0 <= total <= 1.0 or any(r < 0 for r in self._rates()):
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1 (got {total:.3f})")
        if self.first_attempt_fault is not None and self.first_attempt_fault not in FAULT_KINDS:
            raise ValueError(f"first_attempt_fault must be one of {FAULT_KINDS}")

    @classmethod
    def mixed(cls, rate: float, seed: int = 0, **kwargs: Any) -> FaultPlan:
        """`rate` split evenly over all six fault kinds."""
        r = rate / len(FAULT_KINDS)
        return cls(rate_429=r, rate_500=r, rate_503=r, rate_slow=r, rate_malformed=r, rate_drop=r, seed=seed, **kwargs)

    def _rates(self) -> tuple[float, ...]:
        return (self.rate_429, self.rate_500, self.rate_503, self.rate_slow, self.rate_malformed, self.rate_drop)

    def decide(self, key: str, attempt: int) -> tuple[str | None, float]:
        """The fault (or None) for attempt `attempt` (0-based) of prompt `key`, and a Retry-After."""
        rng = random.Random(f"{self.seed}:{key}:{attempt}")
        retry_after = round(rng.uniform(*self.retry_after), 3)
        if attempt == 0 and self.first_attempt_fault:
            return self.first_attempt_fault, retry_after
        u, acc = rng.random(), 0.0
        for kind, rate in zip(FAULT_KINDS, self._rates(), strict=True):
            acc += rate
            if u < acc:
                return kind, retry_after
        return None, retry_after


@dataclass(frozen=True)
class Attempt:
    """One call as the server saw it: when it arrived (time.monotonic), its prompt, and the outcome
    ("ok", "429", "500", "503", "slow", "malformed", "drop", or an error status)."""

    key: str
    attempt: int
    received: float
    outcome: str
    retry_after: float | None = None


@dataclass
class ServerStats:
    total_calls: int = 0
    by_outcome: Counter = field(default_factory=Counter)
    successes: Counter = field(default_factory=Counter)  # prompt key -> successful completions
    attempts: Counter = field(default_factory=Counter)  # prompt key -> calls
    log: list[Attempt] = field(default_factory=list)

    def attempts_for(self, key: str) -> list[Attempt]:
        return sorted((a for a in self.log if a.key == key), key=lambda a: a.attempt)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 512
    allow_reuse_address = True
    owner: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up before its reply (a timeout, a cancelled run) is normal for a test server:
        it is counted in the stats (`write_failed`), not printed as a traceback. Other errors still are."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60  # idle keep-alive connections close after this
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logs
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": {"message": message, "type": "fake_error", "code": status}})
        self._send(status, body.encode("utf-8"), headers)

    @property
    def route(self) -> str:
        """The path without its query string (clients may send `?api_key=...`)."""
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self) -> None:  # noqa: N802
        if any(r.handle(self, "GET", self.route, b"") for r in self.server.owner.routes):
            return
        if self.route == "/v1/models":
            data = [self.server.owner.model_entry(m) for m in self.server.owner.models]
            self._send(200, json.dumps({"object": "list", "data": data}).encode("utf-8"))
        else:
            self._send_error_json(404, f"no route GET {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if any(r.handle(self, "POST", self.route, raw) for r in self.server.owner.routes):
            return
        if self.route not in ("/v1/chat/completions", "/v1/completions"):
            self._send_error_json(404, f"no route POST {self.path}")
            return
        if self.route == "/v1/completions":
            self.server.owner._handle_chat(self, raw, text=True)
        else:
            self.server.owner._handle_chat(self, raw)


class FakeOpenAIServer:
    """An OpenAI-compatible chat server on a background thread. Use as a context manager:

    with FakeOpenAIServer(echo_responder, faults=FaultPlan.mixed(0.3)) as srv:
        model = load_model("openai:fake@" + srv.base_url)
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float | Callable[[dict], float] = 0.0,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model",),
        root: str | None = None,
        created: int = 0,
        owned_by: str = "fake",
        system_fingerprint: str | None = None,
        max_model_len: int | None = None,
    ) -> None:
        self.responder = responder or default_responder
        self.latency = latency
        self.faults = faults
        self.api_key = api_key  # when set: `Authorization: Bearer <api_key>`, or `?api_key=` / `?key=` in the URL
        self.models = models
        self.root = root  # /v1/models: what the model was loaded from (vLLM: the weights path)
        self.created = created
        self.owned_by = owned_by
        self.system_fingerprint = system_fingerprint  # in every completion when set
        self.max_model_len = max_model_len  # /v1/models: the context window (vLLM's field)
        self.routes: list[Any] = []  # extra route sets: `handle(handler, method, route, body) -> bool`
        self._addr = (host, port)
        self._lock = threading.Lock()
        self._stats = ServerStats()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self._addr, _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes slow replies and latency sleeps
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # end keep-alive handler threads blocked on reads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running: call start() or use it in a with block")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._addr[0]}:{self.port}/v1"

    def model_entry(self, model: str) -> dict[str, Any]:
        """The `/v1/models` entry of one served model (`root` and `max_model_len` only when set)."""
        entry: dict[str, Any] = {"id": model, "object": "model", "created": self.created, "owned_by": self.owned_by}
        if self.root is not None:
            entry["root"] = self.root
        if self.max_model_len is not None:
            entry["max_model_len"] = self.max_model_len
        return entry

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> ServerStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            s = self._stats
            return ServerStats(
                s.total_calls, Counter(s.by_outcome), Counter(s.successes), Counter(s.attempts), list(s.log)
            )

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ServerStats()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _record(self, key: str, attempt: int, received: float, outcome: str, retry_after: float | None = None) -> None:
        with self._lock:
            self._stats.by_outcome[outcome] += 1
            self._stats.log.append(Attempt(key, attempt, received, outcome, retry_after))
            if outcome == "ok":
                self._stats.successes[key] += 1

    # -- the endpoint ----------------------------------------------------------------------------
    def _handle_chat(
        self,
        h: _Handler,
        raw: bytes,
        text: bool = False,
        adapt: Callable[[dict], dict] | None = None,
        render: Callable[[dict, str], bytes] | None = None,
    ) -> None:
        """One chat call; `adapt` (request -> chat-shaped request) and `render` (request, reply -> body) serve
        other wire formats (the Anthropic Messages API) with the same faults and counters."""
        received = time.monotonic()
        try:
            req = json.loads(raw.decode("utf-8"))
            if adapt is not None:
                req = adapt(req)
            if text:  # /v1/completions: the prompt is shown to responders as one user message
                if not isinstance(req["prompt"], str):
                    raise ValueError
                req = {**req, "messages": [{"role": "user", "content": req["prompt"]}]}
            messages = req["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            with self._lock:
                self._stats.total_calls += 1
            self._record("-", 0, received, "400")
            h._send_error_json(
                400,
                "request body must be JSON with a string 'prompt'"
                if text
                else "request body must be JSON with a non-empty 'messages' list",
            )
            return
        key = prompt_key(messages)
        with self._lock:
            self._stats.total_calls += 1
            attempt = self._stats.attempts[key]
            self._stats.attempts[key] += 1
        if (
            self.api_key is not None
            and h.headers.get("Authorization") != f"Bearer {self.api_key}"
            and self.api_key not in _query_keys(h.path)
        ):
            self._record(key, attempt, received, "401")
            h._send_error_json(401, "Incorrect API key provided.")
            return
        fault, retry_after = self.faults.decide(key, attempt) if self.faults else (None, 0.0)
        delay = self.latency(req) if callable(self.latency) else self.latency
        if delay > 0 and self._stopping.wait(delay):
            h.close_connection = True
            return
        if fault is not None:
            self._record(key, attempt, received, fault, retry_after if fault in ("429", "503") else None)
            self._inject(h, fault, retry_after)
            return
        try:
            reply = self.responder(req)
        except Reject as rej:
            self._record(key, attempt, received, str(rej.status))
            h._send_error_json(rej.status, rej.message)
            return
        body = (render or (self._text_completion_body if text else self._completion_body))(req, reply)
        if self.system_fingerprint is not None:
            body = json.dumps(
                {**json.loads(body), "system_fingerprint": self.system_fingerprint}, ensure_ascii=False
            ).encode("utf-8")
        self._record(key, attempt, received, "ok")  # before the reply, so a client never sees stale stats
        try:
            h._send(200, body)
        except OSError:  # the client hung up: that was no success after all
            with self._lock:
                self._stats.successes[key] -= 1
                if self._stats.successes[key] <= 0:
                    del self._stats.successes[key]
                self._stats.by_outcome["ok"] -= 1
                self._stats.by_outcome["write_failed"] += 1
            raise

    def _inject(self, h: _Handler, fault: str, retry_after: float) -> None:
        if fault in ("429", "503"):
            h._send_error_json(int(fault), f"injected {fault}", {"Retry-After": f"{retry_after:g}"})
        elif fault == "500":
            h._send_error_json(500, "injected 500")
        elif fault == "slow":
            assert self.faults is not None
            if not self._stopping.wait(self.faults.slow_seconds):
                try:
                    h._send_error_json(504, "injected slow reply")
                except OSError:  # the client gave up long ago
                    h.close_connection = True
        elif fault == "malformed":
            h._send(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"mess')
        else:  # drop: close without a reply
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _completion_body(req: dict[str, Any], text: str) -> bytes:
        finish = "stop"
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0 and _words(text) > max_tokens:
            text, finish = " ".join(text.split()[:max_tokens]), "length"
        prompt_tokens = sum(_words(str(m.get("content", ""))) for m in req["messages"])
        completion_tokens = _words(text)
        logprobs = _fake_logprobs(text, req.get("top_logprobs")) if req.get("logprobs") else None
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(req.get("model", "fake-model")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    @staticmethod
    def _text_completion_body(req: dict[str, Any], text: str) -> bytes:
        """A legacy /v1/completions reply (`choices[0].text`, `logprobs.top_logprobs` as dicts)."""
        chat = json.loads(FakeOpenAIServer._completion_body({**req, "logprobs": False}, text))
        choice = chat["choices"][0]
        logprobs = None
        if isinstance(req.get("logprobs"), int) and not isinstance(req.get("logprobs"), bool):
            first = _fake_logprobs(choice["message"]["content"], req["logprobs"])["content"][0]
            logprobs = {
                "tokens": [first["token"]],
                "token_logprobs": [first["logprob"]],
                "text_offset": [0],
                "top_logprobs": [{t["token"]: t["logprob"] for t in first["top_logprobs"]}],
            }
        body = {
            "id": chat["id"].replace("chatcmpl", "cmpl"),
            "object": "text_completion",
            "created": chat["created"],
            "model": chat["model"],
            "usage": chat["usage"],
            "choices": [
                {
                    "index": 0,
                    "text": choice["message"]["content"],
                    "finish_reason": choice["finish_reason"],
                    "logprobs": logprobs,
                }
            ],
        }
        return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _query_keys(path: str) -> set[str]:
    """Values of `api_key` / `key` query parameters (some gateways take the key in the URL)."""
    from urllib.parse import parse_qsl, urlsplit

    return {v for k, v in parse_qsl(urlsplit(path).query) if k.lower() in ("api_key", "key")}


_FILLER_TOKENS = ("safe", "unsafe", "yes", "no", "I", "The", "Sure", "Sorry", "1", "5", "harmful", "A")


def _fake_logprobs(text: str, top_logprobs: Any) -> dict[str, Any]:
    """Deterministic `logprobs` for the first word of `text`: it gets probability 0.9, and up to
    `top_logprobs - 1` filler tokens share the rest (halving), so P(first word) = 0.9 exactly."""
    first = text.split()[0] if text.split() else ""
    k = top_logprobs if isinstance(top_logprobs, int) and top_logprobs > 0 else 0
    top = [{"token": first, "logprob": math.log(0.9), "bytes": list(first.encode("utf-8"))}]
    rest = [t for t in _FILLER_TOKENS if t != first][: max(0, k - 1)]
    for i, tok in enumerate(rest, start=1):
        top.append({"token": tok, "logprob": math.log(0.1 * 0.5**i), "bytes": list(tok.encode("utf-8"))})
    return {
        "content": [
            {"token": first, "logprob": math.log(0.9), "bytes": list(first.encode("utf-8")), "top_logprobs": top[:k]}
        ]
    }
