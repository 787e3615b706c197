"""The `anthropic:` backend: Claude models over the official `anthropic` SDK's Messages API.

    anthropic:MODEL[@BASE_URL]     e.g. anthropic:claude-3-5-haiku-20241022 (key from ANTHROPIC_API_KEY)

It shares the `openai:` backend's request engine (`http_core.HTTPChatCore`): `concurrency` workers under
a limiter shared by every model on the same server and key, retries with backoff (429 with its
`Retry-After`, 408/409, 5xx including Anthropic's 529 "overloaded", timeouts, dropped connections and
malformed bodies; other 4xx are not retried), and one line when the server cannot be reached. Only the
wire format differs:

- a request's system messages become the Messages API's `system` text (joined by a blank line), the
  rest its `messages`; `max_new_tokens` is `max_tokens`, `stop` is `stop_sequences`; `seed` and
  `frequency_penalty` have no Messages API counterpart and are not sent;
- a reply's text blocks are the completion; `usage.input_tokens` / `output_tokens` are stored as the
  prompt / completion tokens, as for `openai:`; `stop_reason` `max_tokens` is stored as `length` and
  `end_turn` / `stop_sequence` as `stop`, so truncation reads the same for both providers.

Identity: `anthropic:MODEL` (plus `@URL` off api.anthropic.com), the name as typed. Use a dated snapshot
name (`claude-3-5-haiku-20241022`): an alias (`claude-3-5-haiku-latest`) may serve other weights later
under the same identity. The `model` field of every reply is collected in `served_models`, and a reply
from a model other than the one named is logged once, so an alias is seen.

The key comes from `ANTHROPIC_API_KEY` (or the `api_key` option) only; it stays in the SDK client and
never reaches the identity, the store, a log or an error message. A base URL other than
api.anthropic.com (a proxy, the fake server) works without a key.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import UserError
from .base import ChatRequest, Completion, Usage
from .concurrency import shared_limiter
from .http_core import DEFAULT_CONTEXT_WINDOW, HTTPChatCore
from .openai_http import CONNECT_TIMEOUT_CAP, Failure, SDKTransport
from .redact import redact_text, safe_url
from .registry import register_backend
from .spec import ModelSpec

log = logging.getLogger(__name__)

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
MESSAGES_PATH = "/v1/messages"
_STOP_REASONS = {"max_tokens": "length", "end_turn": "stop", "stop_sequence": "stop"}


def _is_anthropic_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "anthropic.com" or host.endswith(".anthropic.com")


def _base_url(given: str | None) -> str:
    return (given or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_DEFAULT_BASE_URL).rstrip("/")


def _missing_key_message(model: str) -> str:
    return (
        f"{KEY_ENV} is not set: anthropic:{model} on api.anthropic.com needs a key; export "
        f"{KEY_ENV}=... (or give a base URL: anthropic:MODEL@http://...)"
    )


def _identity(model: str, safe_base_url: str) -> str:
    if safe_base_url.rstrip("/") == ANTHROPIC_DEFAULT_BASE_URL:
        return f"anthropic:{model}"
    return f"anthropic:{model}@{safe_base_url}"


def anthropic_httpx() -> Any:
    """The httpx module the installed anthropic SDK builds on (httpx, or httpx2 in newer releases)."""
    import anthropic

    for cls in anthropic.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.split(".")[0]
        if root.startswith("httpx"):
            return importlib.import_module(root)
    raise RuntimeError("cannot find the httpx module of the anthropic SDK")  # pragma: no cover


def make_client(url: str, key: str, *, timeout: float, concurrency: int, max_retries: int = 0) -> Any:
    """An `anthropic.AsyncAnthropic` client; the SDK's retries are off by default (ours run instead)."""
    try:
        import anthropic
    except ImportError:
        raise UserError(
            "the anthropic: backend needs the anthropic SDK: pip install 'medsafetybench[anthropic]'"
        ) from None
    httpx = anthropic_httpx()
    tmo = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_CAP))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return anthropic.AsyncAnthropic(
        api_key=key,
        base_url=url,
        timeout=tmo,
        max_retries=max_retries,
        http_client=anthropic.DefaultAsyncHttpxClient(limits=limits, timeout=tmo),
    )


class AnthropicTransport(SDKTransport):
    """Messages API calls through the official SDK (`client.post`, replies read as JSON); the posting,
    error mapping and closing are `SDKTransport`'s."""

    def __init__(self, *, url: str, key: str, timeout: float, concurrency: int) -> None:  # noqa: D107
        import anthropic

        self._sdk = anthropic
        self._client = make_client(url, key, timeout=timeout, concurrency=concurrency)
        self._response_type = anthropic_httpx().Response


@register_backend("anthropic")
class AnthropicChatModel(HTTPChatCore):
    """A Claude model behind the Messages API (implements `ChatModel`, `SupportsContextLength` and
    `SupportsConnectionKey`; the Messages API returns no log-probabilities)."""

    BACKEND: ClassVar[str] = "anthropic"
    KEY_ENV: ClassVar[str] = KEY_ENV
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "api_key",
            "concurrency",
            "timeout",
            "max_retries",
            "backoff_base",
            "backoff_cap",
            "context_window",
            "adaptive",
        }
    )

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        context_window: int | None = DEFAULT_CONTEXT_WINDOW,
        adaptive: bool = True,
    ) -> None:
        if not model:
            raise UserError("anthropic backend: no model name given; write e.g. anthropic:claude-3-5-haiku-20241022")
        url = _base_url(base_url)
        if not url.startswith(("http://", "https://")):
            raise UserError(f"anthropic backend: base URL '{redact_text(url)}' must start with http:// or https://")
        key = api_key or os.environ.get(KEY_ENV) or None
        if key is None:
            if _is_anthropic_host(url):
                raise UserError(_missing_key_message(model))
            key = "EMPTY"
        self.model = model
        self.base_url = safe_url(url)
        self._url = url
        self.identity = _identity(model, self.base_url)
        self.served_models: set[str] = set()
        self._init_core(
            url,
            key,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            context_window=context_window,
            adaptive=adaptive,
        )

    # -- spec and registry -----------------------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """The SDK is installed and the key is set when api.anthropic.com is the endpoint (no call is made)."""
        if importlib.util.find_spec("anthropic") is None:
            raise UserError(f"{spec.display} needs the anthropic SDK: pip install 'medsafetybench[anthropic]'")
        if _is_anthropic_host(_base_url(spec.base_url)) and not os.environ.get(KEY_ENV):
            raise UserError(_missing_key_message(spec.name))

    @classmethod
    def identity_for(cls, spec: ModelSpec, **options: Any) -> str:
        """The identity `from_spec(spec)` would have: the name and the safe base URL."""
        return _identity(spec.name, safe_url(_base_url(spec.base_url)))

    def sdk_client(self, max_retries: int = 3) -> Any:
        """A new `AsyncAnthropic` client with this model's endpoint and key, the SDK's own retries on (for
        Message Batches' few control calls)."""
        return make_client(
            self._url, self._key, timeout=self.timeout, concurrency=self.concurrency, max_retries=max_retries
        )

    # -- wire format -----------------------------------------------------------------------------
    def _ensure_transport(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._transport is None or self._loop is not loop:
            self._transport = AnthropicTransport(
                url=self._url, key=self._key, timeout=self.timeout, concurrency=self.concurrency
            )
            self._loop = loop
        self._limiter = shared_limiter(self._connection_key, self.concurrency, adaptive=self.adaptive)
        return self._transport

    @property
    def _path(self) -> str:
        return MESSAGES_PATH

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        return message_params(self.model, request)

    def _parse(self, data: Any) -> Completion:
        completion, served = parse_message(data)
        if served and served not in self.served_models:
            self.served_models.add(served)
            if served != self.model:
                log.info("%s: the API answered as model %s", self.identity, served)
        return completion


def message_params(model: str, request: ChatRequest) -> dict[str, Any]:
    """The Messages API body for one request (also a Message Batches request's `params`)."""
    cfg = request.config
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": cfg.max_new_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
        "temperature": cfg.temperature,
    }
    if system:
        params["system"] = system
    if cfg.top_p != 1.0:
        params["top_p"] = cfg.top_p
    if cfg.stop:
        params["stop_sequences"] = list(cfg.stop)
    return params


def parse_message(data: Any) -> tuple[Completion, str | None]:
    """(completion, the `model` the API named) from a Messages API reply; raises `Failure` when malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise Failure("malformed", "malformed response: no content blocks")
    texts = [b.get("text") for b in data["content"] if isinstance(b, dict) and b.get("type") == "text"]
    if not all(isinstance(t, str) for t in texts):
        raise Failure("malformed", "malformed response: a text block without text")
    u = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    usage = Usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0))
    reason = data.get("stop_reason")
    served = data.get("model")
    return (
        Completion(text="".join(texts), usage=usage, finish_reason=_STOP_REASONS.get(reason, reason)),
        served if isinstance(served, str) else None,
    )
