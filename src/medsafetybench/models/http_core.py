"""The request engine shared by the HTTP chat backends (`openai:`, `anthropic:`): workers, retries, limits.

`HTTPChatCore` owns what does not depend on the provider's wire format:

- concurrency: a pool of `concurrency` workers pulling from the request list (100k requests never
  become 100k tasks), under a limiter shared with every model on the same server and credentials
  (`concurrency.shared_limiter`, keyed by `connection_key()`), which halves on HTTP 429 and grows
  back (AIMD);
- retries (the SDKs' own are off): exponential backoff with jitter, `Retry-After` honoured on
  429/503; 429, 408/409, 5xx, timeouts, dropped connections and malformed bodies are retried, other
  4xx are not. When no request of the first round can even connect, it stops after that round with
  one line naming the URL instead of retrying for minutes;
- secrecy: error messages are scrubbed of the key and of URL credentials.

A subclass sets `BACKEND` and `KEY_ENV` and provides `_ensure_transport()` (a transport with
`post(body, path)` raising `openai_http.Failure`, and `self._limiter`), `_params(request)`,
`_parse(reply_json) -> Completion` and `_path`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import UserError
from .base import ChatRequest, Completion, ResultCallback
from .concurrency import Limiter
from .failure_watch import DEFAULT_GIVE_UP_AFTER, FailureWatch
from .openai_http import Failure
from .redact import redact_text, safe_url
from .spec import ModelSpec

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429})  # plus every 5xx
DEFAULT_CONTEXT_WINDOW = 128_000
CHARS_PER_TOKEN = 4  # estimate for prompt_tokens: there is no tokenizer for a remote model


class _Unreachable(Exception):
    """Every request of the first round failed to connect."""


class _Failed(Exception):
    """A request failed for good (the message is one secret-free line)."""


def check_numbers(
    backend: str,
    concurrency: Any,
    timeout: Any,
    max_retries: Any,
    backoff_base: Any,
    backoff_cap: Any,
    context_window: Any,
) -> tuple[int, float, int, float, float, int | None]:
    """The numeric settings of an HTTP backend, converted and checked (a `UserError` names the bad one)."""
    try:
        concurrency, timeout, max_retries = int(concurrency), float(timeout), int(max_retries)
        backoff_base, backoff_cap = float(backoff_base), float(backoff_cap)
        context_window = None if context_window is None else int(context_window)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"{backend} backend: concurrency, max_retries and context_window must be integers, "
            f"timeout and backoff settings numbers of seconds ({exc})"
        ) from None
    if concurrency < 1:
        raise UserError(f"{backend} backend: concurrency must be at least 1 (got {concurrency})")
    if timeout <= 0:
        raise UserError(f"{backend} backend: timeout must be a positive number of seconds (got {timeout})")
    if max_retries < 0:
        raise UserError(f"{backend} backend: max_retries must be 0 or more (got {max_retries})")
    return concurrency, timeout, max_retries, backoff_base, backoff_cap, context_window


class HTTPChatCore:
    """Workers, retries and the shared limiter of an HTTP chat backend (see the module docstring)."""

    BACKEND: ClassVar[str] = "http"
    KEY_ENV: ClassVar[str] = "API_KEY"

    identity: str
    base_url: str
    concurrency: int
    timeout: float
    max_retries: int
    backoff_base: float
    backoff_cap: float
    context_window: int | None
    _key: str
    _connection_key: str
    _transport: Any
    _loop: asyncio.AbstractEventLoop | None
    _limiter: Limiter | None
    _reached: bool
    _rng: random.Random

    @classmethod
    def parse_tail(cls, backend: str, tail: str, text: str) -> ModelSpec:
        """`MODEL[@BASE_URL]` (the first `@` splits, so a URL may carry `user:password@`)."""
        name, _, base_url = tail.partition("@")
        if not name:
            raise UserError(f"model spec '{redact_text(text)}' names no model before '@'")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise UserError(
                f"model spec '{redact_text(text)}': base URL '{safe_url(base_url)}' must start with http:// or https://"
            )
        return ModelSpec(backend, name, base_url=base_url or None)

    def _init_core(
        self,
        url: str,
        key: str,
        *,
        concurrency: Any,
        timeout: Any,
        max_retries: Any,
        backoff_base: Any,
        backoff_cap: Any,
        context_window: Any,
        adaptive: Any,
        give_up_after: int = DEFAULT_GIVE_UP_AFTER,
    ) -> None:
        """Check and set the engine's settings, the key, the connection key (safe URL + a hash of key and
        full URL: models with equal keys share one limit) and an empty transport state."""
        (self.concurrency, self.timeout, self.max_retries, self.backoff_base, self.backoff_cap, self.context_window) = (
            check_numbers(self.BACKEND, concurrency, timeout, max_retries, backoff_base, backoff_cap, context_window)
        )
        self.adaptive = bool(adaptive)
        self._key = key
        secret = f"{key}\0{url}".encode()
        self._connection_key = f"{safe_url(url)}#{hashlib.sha256(secret).hexdigest()[:12]}"
        self._transport = None
        self._loop = None
        self._limiter = None
        self._reached = False  # any HTTP answer from the server in this process
        self._watch = FailureWatch(safe_url(url), int(give_up_after))  # stops a server that always fails
        self.requests_sent = 0
        """HTTP requests sent by this model in this process, every retry and probe included."""
        self._rng = random.Random()

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> Any:
        """Build from `BACKEND:MODEL[@BASE_URL]` with the options in the class's `OPTIONS`."""
        wanted = getattr(cls, "OPTIONS", frozenset())
        return cls(spec.name, base_url=spec.base_url, **{k: v for k, v in options.items() if k in wanted})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(identity={self.identity!r}, concurrency={self.concurrency}, "
            f"timeout={self.timeout}, max_retries={self.max_retries})"
        )

    def _ensure_transport(self) -> Any:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def _params(self, request: ChatRequest) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _parse(self, data: Any) -> Completion:  # pragma: no cover
        raise NotImplementedError

    @property
    def _path(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def connection_key(self) -> str:
        """Safe base URL + a hash of key and full URL: models with equal keys share one limit."""
        return self._connection_key

    def context_length(self) -> int | None:
        """The configured `context_window` (the API does not say)."""
        return self.context_window

    def prompt_tokens(self, request: ChatRequest) -> int:
        """An estimate: characters / 4 plus a few tokens per message (no tokenizer for a remote model)."""
        return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + 4 for m in request.messages)

    def _scrub(self, text: str) -> str:
        text = redact_text(" ".join(str(text).split()))
        if self._key and self._key != "EMPTY" and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text[:300]

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _classify(self, failure: Failure) -> tuple[bool, float | None, str]:
        """(retryable, server-requested delay, one-line secret-free message) for a failed call."""
        if failure.kind == "status":
            status = failure.status or 0
            if status == 401:
                return False, None, f"HTTP 401 authentication failed: check {self.KEY_ENV} for {self.base_url}"
            msg = f"HTTP {status}: {self._scrub(failure.message)}"
            if status in RETRYABLE_STATUS or status >= 500:
                return True, failure.retry_after if status in (429, 503) else None, msg
            return False, None, msg
        if failure.kind == "timeout":
            return True, None, f"request timed out after {self.timeout:g} s"
        return True, None, self._scrub(failure.message)  # connect, dropped, malformed: retried

    async def _call(self, params: dict[str, Any], parse: Any, first_round: list[int] | None) -> Any:
        """One request with retries; returns parse(reply JSON) or raises `_Failed` with the message."""
        transport = self._ensure_transport()
        limiter = self._limiter
        assert limiter is not None
        attempt = 0
        while True:
            ticket = await limiter.acquire()
            try:
                self.requests_sent += 1
                data = await transport.post(params, self._path)
                self._reached = True
                try:
                    result = parse(data)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise Failure("malformed", f"malformed response: {type(exc).__name__}") from None
                limiter.succeeded()
                self._watch.success()
                return result
            except Failure as failure:
                if failure.kind in ("status", "malformed"):
                    self._reached = True
                    if failure.status == 429:
                        limiter.overloaded(ticket)
                retryable, delay, msg = self._classify(failure)
                rate_limited = failure.status == 429
                if first_round is not None and attempt == 0 and not self._reached and failure.kind == "connect":
                    first_round[0] += 1
                    if first_round[0] >= first_round[1]:
                        raise _Unreachable(msg) from None
            finally:
                limiter.release()
            if not retryable or attempt >= self.max_retries:
                self._watch.failed(msg, attempt + 1, self.max_retries + 1, None, rate_limited=rate_limited)
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                log.warning("%s: request failed%s: %s", self.identity, tries, msg)
                raise _Failed(msg + tries)
            wait = delay if delay is not None else self._backoff(attempt)
            self._watch.failed(msg, attempt + 1, self.max_retries + 1, wait, rate_limited=rate_limited)
            await asyncio.sleep(wait)
            attempt += 1

    async def _run_all(self, items: Sequence[Any], one: Any, done: Any) -> None:
        """Run `one(item, first_round)` for every item on `concurrency` workers, calling
        `done(index, result)` as each finishes; stop with a `UserError` when the server is unreachable."""
        if not items:
            return
        self._ensure_transport()
        pending = iter(enumerate(items))  # shared by the workers; next() never awaits
        first_round = None if self._reached else [0, min(self.concurrency, len(items))]

        async def worker() -> None:
            for index, item in pending:
                done(index, await one(item, first_round))

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(items)))]
        try:
            await asyncio.gather(*tasks)
        except _Unreachable as exc:
            raise UserError(
                f"cannot connect to {self.base_url} ({exc}): every request of the first round "
                "failed; is the server running and the URL right?"
            ) from None
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- ChatModel -------------------------------------------------------------------------------
    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        """Complete every request (at most `concurrency` in flight); results in input order.
        `on_result(index, completion)` runs on the event loop as each request finishes."""
        results: list[Completion | None] = [None] * len(requests)

        async def one(request: ChatRequest, first_round: list[int] | None) -> Completion:
            try:
                return await self._call(self._params(request), self._parse, first_round)
            except _Failed as exc:
                return Completion(text="", error=str(exc))

        def done(index: int, completion: Completion) -> None:
            results[index] = completion
            if on_result is not None:
                on_result(index, completion)

        await self._run_all(requests, one, done)
        return [r if r is not None else Completion("", error="not run") for r in results]

    async def aclose(self) -> None:
        if self._transport is not None:
            if self._loop is asyncio.get_running_loop():
                await self._transport.aclose()
            self._transport = None
            self._loop = None
