"""The `openai:` backend: any OpenAI-compatible chat-completions endpoint.

It owns (the workers, retries and shared limiter are `http_core.HTTPChatCore`'s, shared with `anthropic:`):

- transport (`openai_http.py`): one client per model and event loop with a keep-alive pool sized to
  `concurrency`; by default plain aiohttp, which needs about a quarter of the official SDK's client CPU
  per request (measured, see docs/models.md); `transport="sdk-aiohttp"` or `"sdk-httpx"` goes through
  the official openai SDK instead, with the same requests, retries and results;
- secrecy: the API key, URL userinfo and secret query parameters (`?api_key=`) stay in the client;
  `identity`, `repr`, `connection_key`, logs and error messages show the safe URL only;
- prompt formats: `chat` (the default; `paper`, and the formats of local models, are the same here: the
  paper sent GPT models the system prompt and the bare request) sends chat messages to
  `/chat/completions`, where the server applies the
  model's chat template. `raw` and `verbatim` send the last user message as a text prompt to the legacy
  `/completions` endpoint (vLLM, TGI and llama.cpp servers serve it), for prompts rendered by the
  caller, e.g. the classifier judges' templates. A `verbatim` text carries its own BOS, and servers
  differ: vLLM honours `"add_special_tokens": false` (an extension), TGI and llama.cpp ignore it and
  add their BOS anyway. So `verbatim_bos` says what is sent:
  `server` (the default) removes a leading BOS text (`<|begin_of_text|>`, `<s>` or `<bos>`, and any
  whitespace before it) and sends the rest plainly, so every server that adds a BOS (all of these
  do by default) sends exactly one; a text without a leading BOS is sent with
  `"add_special_tokens": false` (honoured by vLLM only). `text` sends the text as it stands with
  `"add_special_tokens": false`: byte-exact on vLLM (e.g. Llama Guard 3 8B's leading space before
  its BOS), a second BOS on servers without the extension. Identities end in `|fmt=raw`,
  `|fmt=verbatim|bos=server` or `|fmt=verbatim` (`text`, what `verbatim` always sent before);
  `chat` identities are unchanged;
- what the server says about itself (docs/models.md, "What identifies an API model"): `describe_server()`
  reads the model's `/v1/models` entry once (`root`, `owned_by`, `parent`, `created` unless it is the time
  of the query, and `max_model_len`, which becomes the context window when none was given), and every
  completion carries the reply's `system_fingerprint`. The evaluation compares both with what the store
  recorded for this identity (`pipeline`, `stages`). For a server that says nothing, `model_version`
  names the version: the identity then ends in `|version=V`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ..errors import UserError
from .base import ChatRequest, Completion, GenerationConfig, Usage
from .capabilities import TokenLogprobs, candidate_logprobs
from .concurrency import shared_limiter
from .failure_watch import DEFAULT_GIVE_UP_AFTER
from .formats import format_raw
from .http_core import DEFAULT_CONTEXT_WINDOW, HTTPChatCore, _Failed
from .openai_http import TRANSPORTS, Failure, make_transport, resolve_transport, userinfo_to_basic_auth
from .redact import redact_text, safe_url, split_secret_query
from .registry import register_backend
from .spec import ModelSpec

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
log = logging.getLogger(__name__)
SERVER_FIELDS = ("root", "parent", "owned_by", "created")  # of a /v1/models entry, kept as its description
QUERY_TIME_SLACK = 86_400  # a `created` within a day of the query is the query's time (vLLM, llama.cpp)
TEXT_FORMATS = ("raw", "verbatim")  # the last user message as a text prompt to /completions
VERBATIM_BOS = ("server", "text")  # who supplies a verbatim text's BOS (see the module docstring)
_LEADING_BOS = re.compile(r"^\s*(?:<\|begin_of_text\|>|<s>|<bos>)")


def _is_openai_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "openai.com" or host.endswith(".openai.com")


@register_backend("openai")
class OpenAIChatModel(HTTPChatCore):
    """A chat model behind an OpenAI-compatible HTTP API (implements `ChatModel`, `SupportsLogprobs`,
    `SupportsContextLength` and `SupportsConnectionKey`)."""

    BACKEND: ClassVar[str] = "openai"
    KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"

    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "api_key",
            "concurrency",
            "timeout",
            "max_retries",
            "backoff_base",
            "backoff_cap",
            "context_window",
            "transport",
            "adaptive",
            "prompt_format",
            "verbatim_bos",
            "model_version",
            "give_up_after",
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
        transport: str = "auto",
        adaptive: bool = True,
        prompt_format: str = "chat",
        verbatim_bos: str = "server",
        model_version: str | None = None,
        give_up_after: int = DEFAULT_GIVE_UP_AFTER,
    ) -> None:
        if not model:
            raise UserError("openai backend: no model name given; write e.g. openai:gpt-4o-mini")
        if transport not in TRANSPORTS:
            raise UserError(f"openai backend: transport '{transport}' is unknown; use one of {', '.join(TRANSPORTS)}")
        fmt = _check_format(prompt_format)
        if verbatim_bos not in VERBATIM_BOS:
            raise UserError(
                f"openai backend: verbatim_bos '{verbatim_bos}' is unknown; use server (strip "
                "a leading BOS, the server adds its own) or text (send it with "
                "add_special_tokens=false, for vLLM)"
            )
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
        self.transport = resolve_transport(transport)
        self.prompt_format = fmt
        self._text = fmt in TEXT_FORMATS
        self.verbatim_bos = verbatim_bos
        self.model_version = check_model_version(model_version)
        self.identity = _identity(model, self.base_url, fmt, verbatim_bos, self.model_version)
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
            give_up_after=give_up_after,
        )
        self._window_given = context_window != DEFAULT_CONTEXT_WINDOW
        self._described: dict[str, Any] | None = None
        self._max_model_len: int | None = None

    # -- spec and registry -----------------------------------------------------------------------
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
        return _identity(
            spec.name,
            safe_url(spec.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL),
            _check_format(options.get("prompt_format") or "chat"),
            options.get("verbatim_bos") or "server",
            check_model_version(options.get("model_version")),
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIChatModel(identity={self.identity!r}, concurrency={self.concurrency}, "
            f"timeout={self.timeout}, max_retries={self.max_retries}, transport={self.transport!r})"
        )

    def sdk_client(self, max_retries: int = 3) -> Any:
        """A new `openai.AsyncOpenAI` client with this model's endpoint and credentials, the SDK's own
        retries on (for the Batch API's few control calls: uploads, creates, polls)."""
        import openai

        return openai.AsyncOpenAI(
            api_key=self._key,
            base_url=self._url,
            timeout=self.timeout,
            max_retries=max_retries,
            default_query=dict(self._query) or None,
            default_headers=dict(self._headers) or None,
        )

    def context_length(self) -> int | None:
        """The configured `context_window`, else the server's own `max_model_len` once `describe_server`
        read it (vLLM reports it), else the default."""
        if not self._window_given and self._max_model_len:
            return self._max_model_len
        return self.context_window

    async def describe_server(self) -> dict[str, Any] | None:
        """What the server says about this model in `GET /models` (once per model): the fields of
        `SERVER_FIELDS` it gives, `created` left out when it is the time of the query. None when the
        server lists no such model or does not answer (many servers say nothing: see `model_version`)."""
        if self._described is not None:
            return self._described or None
        self._described = {}
        try:
            data = await self._ensure_transport().get("/models")
        except Failure as failure:
            log.debug("%s: GET /models failed: %s", self.identity, self._scrub(failure.message))
            return None
        entries = data.get("data") if isinstance(data, dict) else None
        entry = next((e for e in entries or () if isinstance(e, dict) and e.get("id") == self.model), None)
        if entry is None:
            return None
        if isinstance(entry.get("max_model_len"), int) and entry["max_model_len"] > 0:
            self._max_model_len = entry["max_model_len"]
        described = {k: entry[k] for k in SERVER_FIELDS if isinstance(entry.get(k), (str, int)) and entry[k] != ""}
        created = described.get("created")
        if not isinstance(created, int) or abs(time.time() - created) < QUERY_TIME_SLACK:
            described.pop("created", None)
        self._described = described
        return described or None

    async def read_fingerprint(self) -> str | None:
        """The `system_fingerprint` of one 1-token reply (None when the server sends none or fails)."""
        probe = ChatRequest.simple("ping", config=GenerationConfig(max_new_tokens=1))
        (completion,) = await self.generate([probe])
        return completion.system_fingerprint if completion.ok else None

    # -- plumbing --------------------------------------------------------------------------------
    def _ensure_transport(self) -> Any:
        """One transport per event loop (a CLI may call asyncio.run more than once), and the shared limiter."""
        loop = asyncio.get_running_loop()
        if self._transport is None or self._loop is not loop:
            self._transport = make_transport(
                self.transport,
                url=self._url,
                key=self._key,
                query=self._query,
                headers=self._headers,
                timeout=self.timeout,
                concurrency=self.concurrency,
            )
            self._loop = loop
        self._limiter = shared_limiter(self._connection_key, self.concurrency, adaptive=self.adaptive)
        return self._transport

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        cfg = request.config
        params: dict[str, Any] = {"model": self.model}
        if self._text:
            params["prompt"] = format_raw(request.messages)
            if self.prompt_format == "verbatim":
                bos = _LEADING_BOS.match(params["prompt"]) if self.verbatim_bos == "server" else None
                if bos is not None:  # the server adds its own BOS
                    params["prompt"] = params["prompt"][bos.end() :]
                else:
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
        fingerprint = data.get("system_fingerprint")
        return Completion(
            text=text,
            usage=usage,
            finish_reason=choice.get("finish_reason"),
            system_fingerprint=fingerprint if isinstance(fingerprint, str) and fingerprint else None,
        )

    async def first_token_logprobs(
        self, requests: Sequence[ChatRequest], candidates: Sequence[str] = (), top_k: int = 20
    ) -> list[TokenLogprobs]:
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


def _identity(
    model: str,
    safe_base_url: str,
    prompt_format: str = "chat",
    verbatim_bos: str = "server",
    version: str | None = None,
) -> str:
    name = f"openai:{model}" if safe_base_url == OPENAI_DEFAULT_BASE_URL else f"openai:{model}@{safe_base_url}"
    if prompt_format == "verbatim" and verbatim_bos == "server":
        name = f"{name}|fmt=verbatim|bos=server"
    elif prompt_format in TEXT_FORMATS:
        name = f"{name}|fmt={prompt_format}"
    return f"{name}|version={version}" if version else name


def check_model_version(version: Any) -> str | None:
    """A `model_version` (letters, digits and `._-:+`), or None."""
    if version is None or version == "":
        return None
    text = str(version).strip()
    if not text or len(text) > 100 or any(not (c.isalnum() or c in "._-:+") for c in text):
        raise UserError(
            f"--model-version '{redact_text(str(version))}': use letters, digits and . _ - : + "
            "(at most 100), e.g. 2024-06-01 or llama3-8b-ft2"
        )
    return text


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
    pairs = [
        (str(t.get("token", "")), float(t["logprob"]))
        for t in first.get("top_logprobs") or ()
        if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))
    ]
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
    return (
        f"OPENAI_API_KEY is not set: openai:{model} on api.openai.com needs a key; export "
        "OPENAI_API_KEY=... (or give a local base URL: openai:MODEL@http://...)"
    )
