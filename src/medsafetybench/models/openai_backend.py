"""The `openai:` backend: any OpenAI-compatible chat-completions endpoint, through the official SDK.

It owns concurrency (a pool of `concurrency` workers pulling from the request list, so 100k requests
never become 100k tasks, plus a model-wide semaphore on HTTP calls), retries (the SDK's own are off:
exponential backoff with jitter, `Retry-After` honoured on 429/503; 429, 408/409, 5xx, timeouts,
dropped connections and malformed bodies are retried; other 4xx are not) and the secrecy of the API
key, which never appears in `identity`, `repr`, logs or error messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion

from ..errors import UserError
from .base import ChatRequest, Completion, ResultCallback, Usage
from .spec import ModelSpec

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = frozenset({408, 409, 429})  # plus every 5xx
RETRY_AFTER_CAP = 120.0


class _Malformed(Exception):
    """The server answered 200 with a body that is not a usable chat completion."""


def _clean_url(url: str) -> str:
    """The URL without credentials or a trailing slash: safe to show and stable for identity."""
    parts = urlsplit(url.strip())
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), parts.query, "")) or url


def _is_openai_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue  # an HTTP date: fall back to our backoff
        if seconds >= 0:
            return min(seconds, RETRY_AFTER_CAP)
    return None


class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible HTTP API (implements `ChatModel`)."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 8,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0) -> None:
        if not model:
            raise UserError("openai backend: no model name given; write e.g. openai:gpt-4o-mini")
        try:
            concurrency, timeout, max_retries = int(concurrency), float(timeout), int(max_retries)
            backoff_base, backoff_cap = float(backoff_base), float(backoff_cap)
        except (TypeError, ValueError) as exc:
            raise UserError("openai backend: concurrency and max_retries must be integers, timeout and "
                            f"backoff settings numbers of seconds ({exc})") from None
        if int(concurrency) < 1:
            raise UserError(f"openai backend: concurrency must be at least 1 (got {concurrency})")
        if float(timeout) <= 0:
            raise UserError(f"openai backend: timeout must be a positive number of seconds (got {timeout})")
        if int(max_retries) < 0:
            raise UserError(f"openai backend: max_retries must be 0 or more (got {max_retries})")
        env_url = os.environ.get("OPENAI_BASE_URL") or None
        url = base_url or env_url or OPENAI_DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise UserError(f"openai backend: base URL '{_clean_url(url)}' must start with http:// or https://")
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if _is_openai_host(url):
                raise UserError("openai backend: no API key for api.openai.com: set the OPENAI_API_KEY "
                                "environment variable (or give a local base URL: openai:MODEL@http://...)")
            key = "EMPTY"  # local servers (vLLM, llama.cpp, the fake server) accept any key
        self.model = model
        self.base_url = url
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        clean = _clean_url(url)
        self.identity = f"openai:{model}" if clean == OPENAI_DEFAULT_BASE_URL else f"openai:{model}@{clean}"
        self._key = key
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._rng = random.Random()

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> OpenAIChatModel:
        """Build from `openai:MODEL[@BASE_URL]`; uses concurrency, timeout, max_retries, backoff_base,
        backoff_cap and api_key from `options` and ignores the rest (they belong to other backends)."""
        known = ("api_key", "concurrency", "timeout", "max_retries", "backoff_base", "backoff_cap")
        return cls(spec.name, base_url=spec.base_url,
                   **{k: v for k, v in options.items() if k in known and v is not None})

    def __repr__(self) -> str:
        return (f"OpenAIChatModel(identity={self.identity!r}, concurrency={self.concurrency}, "
                f"timeout={self.timeout}, max_retries={self.max_retries})")

    # -- plumbing --------------------------------------------------------------------------------
    def _ensure_client(self) -> openai.AsyncOpenAI:
        """One client and semaphore per event loop (a CLI may call asyncio.run more than once)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url,
                                              timeout=self.timeout, max_retries=0)
            self._loop = loop
            self._sem = asyncio.Semaphore(self.concurrency)
        return self._client

    def _scrub(self, text: str) -> str:
        text = " ".join(str(text).split())
        if self._key and self._key != "EMPTY" and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text[:300]

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _classify(self, exc: BaseException) -> tuple[bool, float | None, str]:
        """(retryable, server-requested delay, one-line secret-free message) for a failed call."""
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 401:
                return False, None, ("HTTP 401 authentication failed: check OPENAI_API_KEY "
                                     f"for {_clean_url(self.base_url)}")
            detail = exc.message if isinstance(exc.message, str) else ""
            msg = f"HTTP {status}: {self._scrub(detail)}"
            if status in RETRYABLE_STATUS or status >= 500:
                delay = _retry_after(exc) if status in (429, 503) else None
                return True, delay, msg
            return False, None, msg
        if isinstance(exc, openai.APITimeoutError):
            return True, None, f"request timed out after {self.timeout:g} s"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return True, None, f"connection error: {self._scrub(type(cause).__name__)}"
        if isinstance(exc, (_Malformed, json.JSONDecodeError, openai.APIResponseValidationError)):
            return True, None, f"malformed response body: {self._scrub(str(exc))}"
        raise exc  # a bug, not a transient failure: let it surface

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        cfg = request.config
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_new_tokens,
        }
        if cfg.top_p != 1.0:
            params["top_p"] = cfg.top_p
        if cfg.seed is not None:
            params["seed"] = cfg.seed
        if cfg.stop:
            params["stop"] = list(cfg.stop)
        if cfg.frequency_penalty:
            params["frequency_penalty"] = cfg.frequency_penalty
        return params

    @staticmethod
    def _parse(resp: Any) -> Completion:
        choices = getattr(resp, "choices", None)
        if not choices:
            raise _Malformed("no choices in the response")
        choice = choices[0]
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if text is None:
            text = getattr(message, "refusal", None)
        if text is None:
            raise _Malformed("the first choice has no message content")
        u = getattr(resp, "usage", None)
        usage = Usage(int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))
        return Completion(text=text, usage=usage, finish_reason=getattr(choice, "finish_reason", None))

    async def _complete(self, request: ChatRequest) -> Completion:
        client = self._ensure_client()
        assert self._sem is not None
        params = self._params(request)
        attempt = 0
        while True:
            try:
                async with self._sem:
                    # client.post = chat.completions.create minus the SDK's recursive TypedDict
                    # transform of the body (a quarter of the client's CPU per call; ours is plain JSON)
                    resp = await client.post("/chat/completions", body=params, cast_to=ChatCompletion)
                return self._parse(resp)
            except Exception as exc:  # noqa: BLE001 - _classify re-raises what is not an API failure
                retryable, delay, msg = self._classify(exc)
            if not retryable or attempt >= self.max_retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                log.warning("%s: request failed%s: %s", self.identity, tries, msg)
                return Completion(text="", error=msg + tries)
            wait = delay if delay is not None else self._backoff(attempt)
            log.debug("%s: %s; retry %d in %.2f s", self.identity, msg, attempt + 1, wait)
            await asyncio.sleep(wait)
            attempt += 1

    # -- ChatModel -------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[ChatRequest],
                       on_result: ResultCallback | None = None) -> list[Completion]:
        """Complete every request (at most `concurrency` in flight); results in input order.
        `on_result(index, completion)` runs on the event loop as each request finishes."""
        results: list[Completion | None] = [None] * len(requests)
        if not requests:
            return []
        self._ensure_client()
        pending = iter(enumerate(requests))  # shared by the workers; next() never awaits

        async def worker() -> None:
            for index, request in pending:
                completion = await self._complete(request)
                results[index] = completion
                if on_result is not None:
                    on_result(index, completion)

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(requests)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [r if r is not None else Completion("", error="not run") for r in results]

    async def aclose(self) -> None:
        if self._client is not None:
            if self._loop is asyncio.get_running_loop():
                await self._client.close()
            self._client = None
            self._loop = None
