"""The `openai:` backend: any OpenAI-compatible chat-completions endpoint.

It owns:

- concurrency: a pool of `concurrency` workers pulling from the request list (100k requests never
  become 100k tasks), under a limiter shared with every model on the same server and credentials
  (`concurrency.shared_limiter`, keyed by `connection_key()`), which halves on HTTP 429 and grows
  back (AIMD);
- transport (`openai_http.py`): one client per model and event loop with a keep-alive pool sized to
  `concurrency`; by default plain aiohttp, which needs about a quarter of the official SDK's client CPU
  per request (measured, see docs/models.md); `transport="sdk-aiohttp"` or `"sdk-httpx"` goes through
  the official openai SDK instead, with the same requests, retries and results;
- retries (the SDK's own are off): exponential backoff with jitter, `Retry-After` honoured on
  429/503; 429, 408/409, 5xx, timeouts, dropped connections and malformed bodies are retried, other
  4xx are not. When no request of the first round can even connect, it stops after that round with
  one line naming the URL instead of retrying for minutes;
- secrecy: the API key, URL userinfo and secret query parameters (`?api_key=`) stay in the client;
  `identity`, `repr`, `connection_key`, logs and error messages show the safe URL only;
- prompt formats: `chat` (the default; `paper`, and the formats of local models, are the same here: the
  paper sent GPT models the system prompt and the bare request) sends chat messages to
  `/chat/completions`, where the server applies the
  model's chat template. `raw` and `verbatim` send the last user message as a text prompt to the legacy
  `/completions` endpoint (vLLM, TGI and llama.cpp servers serve it), for prompts rendered by the
  caller, e.g. the classifier judges' templates; `verbatim` also sends `"add_special_tokens": false` (a
  vLLM extension) so that the server adds no `<s>` of its own, as the `hf:` backend's `verbatim` format
  does. Their identities end in `|fmt=raw` / `|fmt=verbatim`; `chat` identities are unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import UserError
from .base import ChatRequest, Completion, ResultCallback, Usage
from .capabilities import TokenLogprobs, candidate_logprobs
from .concurrency import Limiter, shared_limiter
from .failure_watch import DEFAULT_GIVE_UP_AFTER, FailureWatch
from .formats import format_raw
from .openai_http import TRANSPORTS, Failure, make_transport, resolve_transport, userinfo_to_basic_auth
from .redact import redact_text, safe_url, split_secret_query
from .registry import register_backend
from .spec import ModelSpec

log = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = frozenset({408, 409, 429})  # plus every 5xx
DEFAULT_CONTEXT_WINDOW = 128_000
CHARS_PER_TOKEN = 4  # estimate for prompt_tokens: there is no tokenizer for a remote model
TEXT_FORMATS = ("raw", "verbatim")  # the last user message as a text prompt to /completions


class _Unreachable(Exception):
    """Every request of the first round failed to connect."""


def _is_openai_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


@register_backend("openai")
class OpenAIChatModel:
    """A chat model behind an OpenAI-compatible HTTP API (implements `ChatModel`, `SupportsLogprobs`,
    `SupportsContextLength` and `SupportsConnectionKey`)."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "api_key", "concurrency", "timeout", "max_retries", "backoff_base", "backoff_cap", "context_window",
        "transport", "adaptive", "prompt_format", "give_up_after"})

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 16, timeout: float = 60.0, max_retries: int = 8,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 context_window: int | None = DEFAULT_CONTEXT_WINDOW, transport: str = "auto",
                 adaptive: bool = True, prompt_format: str = "chat",
                 give_up_after: int = DEFAULT_GIVE_UP_AFTER) -> None:
        if not model:
            raise UserError("openai backend: no model name given; write e.g. openai:gpt-4o-mini")
        try:
            concurrency, timeout, max_retries = int(concurrency), float(timeout), int(max_retries)
            backoff_base, backoff_cap = float(backoff_base), float(backoff_cap)
            context_window = None if context_window is None else int(context_window)
        except (TypeError, ValueError) as exc:
            raise UserError("openai backend: concurrency, max_retries and context_window must be integers, "
                            f"timeout and backoff settings numbers of seconds ({exc})") from None
        if concurrency < 1:
            raise UserError(f"openai backend: concurrency must be at least 1 (got {concurrency})")
        if timeout <= 0:
            raise UserError(f"openai backend: timeout must be a positive number of seconds (got {timeout})")
        if max_retries < 0:
            raise UserError(f"openai backend: max_retries must be 0 or more (got {max_retries})")
        if transport not in TRANSPORTS:
            raise UserError(f"openai backend: transport '{transport}' is unknown; use one of {', '.join(TRANSPORTS)}")
        fmt = _check_format(prompt_format)
        url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
        if not url.startswith(("http://", "https://")):
            raise UserError(f"openai backend: base URL '{redact_text(url)}' must start with http:// or https://")
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if _is_openai_host(url):
                raise UserError(_missing_key_message(model))
            key = "EMPTY"  # local servers (vLLM, llama.cpp, the fake server) accept any key
        self.model = model
        self.base_url = safe_url(url)  # safe to show; the full URL stays in _url / _query
        self._url, self._query = split_secret_query(url)
        self._url, self._headers = userinfo_to_basic_auth(self._url)
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.context_window = context_window
        self.adaptive = bool(adaptive)
        self.transport = resolve_transport(transport)
        self.prompt_format = fmt
        self._text = fmt in TEXT_FORMATS
        self.identity = _identity(model, self.base_url, fmt)
        self._watch = FailureWatch(self.base_url, int(give_up_after))  # stops a server that always fails
        self._key = key
        secret = f"{key}\0{url}".encode()
        self._connection_key = f"{self.base_url}#{hashlib.sha256(secret).hexdigest()[:12]}"
        self._transport: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: Limiter | None = None
        self._reached = False  # any HTTP answer from the server in this process
        self._rng = random.Random()

    # -- spec and registry -----------------------------------------------------------------------
    @classmethod
    def parse_tail(cls, backend: str, tail: str, text: str) -> ModelSpec:
        """`MODEL[@BASE_URL]` (the first `@` splits, so a URL may carry `user:password@`)."""
        name, _, base_url = tail.partition("@")
        if not name:
            raise UserError(f"model spec '{redact_text(text)}' names no model before '@'")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise UserError(f"model spec '{redact_text(text)}': base URL '{safe_url(base_url)}' must start "
                            "with http:// or https://")
        return ModelSpec(backend, name, base_url=base_url or None)

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """The key is there when api.openai.com is the endpoint (no network call is made)."""
        url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL
        if _is_openai_host(url) and not os.environ.get("OPENAI_API_KEY"):
            raise UserError(_missing_key_message(spec.name))

    @classmethod
    def identity_for(cls, spec: ModelSpec, **options: Any) -> str:
        """The identity `from_spec(spec, **options)` would have (no client is built): the base URL (from
        the spec or OPENAI_BASE_URL, without its credentials) and a text prompt format change it, no
        other option does."""
        return _identity(spec.name, safe_url(spec.base_url or os.environ.get("OPENAI_BASE_URL")
                                             or OPENAI_DEFAULT_BASE_URL),
                         _check_format(options.get("prompt_format") or "chat"))

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> OpenAIChatModel:
        """Build from `openai:MODEL[@BASE_URL]` with the options in `OPTIONS`."""
        return cls(spec.name, base_url=spec.base_url, **{k: v for k, v in options.items() if k in cls.OPTIONS})

    def __repr__(self) -> str:
        return (f"OpenAIChatModel(identity={self.identity!r}, concurrency={self.concurrency}, "
                f"timeout={self.timeout}, max_retries={self.max_retries}, transport={self.transport!r})")

    def connection_key(self) -> str:
        """Safe base URL + a hash of key and full URL: models with equal keys share one limit."""
        return self._connection_key

    def context_length(self) -> int | None:
        """The configured `context_window` (the API does not say)."""
        return self.context_window

    def prompt_tokens(self, request: ChatRequest) -> int:
        """An estimate: characters / 4 plus a few tokens per message (no tokenizer for a remote model)."""
        return sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) + 4 for m in request.messages)

    # -- plumbing --------------------------------------------------------------------------------
    def _ensure_transport(self) -> Any:
        """One transport per event loop (a CLI may call asyncio.run more than once), and the shared limiter."""
        loop = asyncio.get_running_loop()
        if self._transport is None or self._loop is not loop:
            self._transport = make_transport(self.transport, url=self._url, key=self._key, query=self._query,
                                             headers=self._headers, timeout=self.timeout,
                                             concurrency=self.concurrency)
            self._loop = loop
        self._limiter = shared_limiter(self._connection_key, self.concurrency, adaptive=self.adaptive)
        return self._transport

    def _scrub(self, text: str) -> str:
        text = redact_text(" ".join(str(text).split()))
        if self._key and self._key != "EMPTY" and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text[:300]

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _classify(self, failure: Failure) -> tuple[bool, float | None, str]:
        """(retryable, server-requested delay, one-line secret-free message) for a failed call."""
        if failure.kind == "status":
            status = failure.status or 0
            if status == 401:
                return False, None, f"HTTP 401 authentication failed: check OPENAI_API_KEY for {self.base_url}"
            msg = f"HTTP {status}: {self._scrub(failure.message)}"
            if status in RETRYABLE_STATUS or status >= 500:
                return True, failure.retry_after if status in (429, 503) else None, msg
            return False, None, msg
        if failure.kind == "timeout":
            return True, None, f"request timed out after {self.timeout:g} s"
        return True, None, self._scrub(failure.message)  # connect, dropped, malformed: retried

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        cfg = request.config
        params: dict[str, Any] = {"model": self.model}
        if self._text:
            params["prompt"] = format_raw(request.messages)
            if self.prompt_format == "verbatim":
                params["add_special_tokens"] = False
        else:
            params["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        params.update({"temperature": cfg.temperature, "max_tokens": cfg.max_new_tokens})
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
    def _choice(data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise Failure("malformed", "malformed response: the body is not a JSON object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Failure("malformed", "malformed response: no choices")
        return choices[0]

    @property
    def _path(self) -> str:
        return "/completions" if self._text else "/chat/completions"

    @classmethod
    def _parse(cls, data: Any) -> Completion:
        choice = cls._choice(data)
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if text is None and isinstance(message, dict):
            text = message.get("refusal")
        if text is None and message is None:
            text = choice.get("text")  # a /completions reply
        if not isinstance(text, str):
            raise Failure("malformed", "malformed response: the first choice has no message content")
        u = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        usage = Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
        return Completion(text=text, usage=usage, finish_reason=choice.get("finish_reason"))

    async def _call(self, params: dict[str, Any], parse: Any, first_round: list[int] | None) -> Any:
        """One request with retries; returns parse(reply JSON) or raises `_Failed` with the message."""
        transport = self._ensure_transport()
        limiter = self._limiter
        assert limiter is not None
        attempt = 0
        while True:
            ticket = await limiter.acquire()
            try:
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
            raise UserError(f"cannot connect to {self.base_url} ({exc}): every request of the first round "
                            "failed; is the server running and the URL right?") from None
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- ChatModel -------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[ChatRequest],
                       on_result: ResultCallback | None = None) -> list[Completion]:
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

    async def first_token_logprobs(self, requests: Sequence[ChatRequest], candidates: Sequence[str] = (),
                                   top_k: int = 20) -> list[TokenLogprobs]:
        """One greedy token per request with `logprobs` / `top_logprobs` (at most 20, the API's limit);
        a candidate not among the returned tokens is None (see `SupportsLogprobs`)."""
        k = max(1, min(int(top_k), 20))
        results: list[TokenLogprobs | None] = [None] * len(requests)

        def parse(data: Any) -> TokenLogprobs:
            logprobs = self._choice(data).get("logprobs") or {}
            pairs = _text_logprobs(logprobs) if self._text else _chat_logprobs(logprobs)
            if pairs is None:
                raise Failure("malformed", "the response has no logprobs: does the server support them?")
            pairs.sort(key=lambda p: -p[1])
            return TokenLogprobs(top=tuple(pairs), candidates=candidate_logprobs(pairs, candidates))

        async def one(request: ChatRequest, first_round: list[int] | None) -> TokenLogprobs:
            asked: dict[str, Any] = {"logprobs": k} if self._text else {"logprobs": True, "top_logprobs": k}
            params = {**self._params(request), "max_tokens": 1, "temperature": 0.0, **asked}
            params.pop("top_p", None)
            try:
                return await self._call(params, parse, first_round)
            except _Failed as exc:
                return TokenLogprobs(error=str(exc))

        def done(index: int, result: TokenLogprobs) -> None:
            results[index] = result

        await self._run_all(requests, one, done)
        return [r if r is not None else TokenLogprobs(error="not run") for r in results]

    async def aclose(self) -> None:
        if self._transport is not None:
            if self._loop is asyncio.get_running_loop():
                await self._transport.aclose()
            self._transport = None
            self._loop = None


class _Failed(Exception):
    """A request failed for good (the message is one secret-free line)."""


def _identity(model: str, safe_base_url: str, prompt_format: str = "chat") -> str:
    name = f"openai:{model}" if safe_base_url == OPENAI_DEFAULT_BASE_URL else f"openai:{model}@{safe_base_url}"
    return f"{name}|fmt={prompt_format}" if prompt_format in TEXT_FORMATS else name


def _check_format(prompt_format: str | None) -> str:
    """`raw` / `verbatim` (text prompts to /completions), else `chat`: the formats of local models are
    ignored here, as every option a backend does not use is (`models.formats.resolve_spec_format` is
    where a user's --prompt-format is checked against the backend)."""
    return prompt_format if prompt_format in TEXT_FORMATS else "chat"


def _chat_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    """(token, logprob) pairs of the first position from a /chat/completions `logprobs` object."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    pairs = [(str(t.get("token", "")), float(t["logprob"])) for t in first.get("top_logprobs") or ()
             if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))]
    if not pairs and isinstance(first.get("logprob"), (int, float)):
        pairs = [(str(first.get("token", "")), float(first["logprob"]))]
    return pairs


def _text_logprobs(logprobs: Any) -> list[tuple[str, float]] | None:
    """(token, logprob) pairs of the first position from a legacy /completions `logprobs` object
    (`top_logprobs`: one {token: logprob} dict per position)."""
    top = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
    if not isinstance(top, list) or not top or not isinstance(top[0], dict):
        return None
    return [(str(t), float(lp)) for t, lp in top[0].items() if isinstance(lp, (int, float))]


def _missing_key_message(model: str) -> str:
    return (f"OPENAI_API_KEY is not set: openai:{model} on api.openai.com needs a key; export "
            "OPENAI_API_KEY=... (or give a local base URL: openai:MODEL@http://...)")
