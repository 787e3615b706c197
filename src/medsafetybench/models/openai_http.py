"""HTTP transports of the `openai:` backend, and everything that turns their failures into one shape.

A transport sends one chat-completions body (or, with `path="/completions"`, one legacy text-completions
body) and returns the parsed JSON reply, or raises `Failure`
(kind "status", "connect", "timeout", "dropped" or "malformed"), so the backend's retry loop does not
care which client is underneath:

- `AiohttpTransport` ("aiohttp", the default when aiohttp is installed): a plain aiohttp session, one
  keep-alive pool of `concurrency` connections. It does about a quarter of the client work per request
  of the SDK (measured in `bench/api_clients.py`, decision in docs/models.md).
- `SDKTransport` ("sdk-aiohttp", "sdk-httpx"): the official openai SDK (`client.post`, replies read as
  JSON rather than pydantic models) over its `DefaultAioHttpClient` or its httpx client.

Both send the same request: `Authorization: Bearer KEY` (or Basic, from `user:password@` in the URL),
the URL's query parameters on every call, a per-request timeout with connects capped at 10 s. A
logging filter keeps URL credentials out of the SDK's and httpx's log records.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .redact import redact_text

RETRY_AFTER_CAP = 120.0
CONNECT_TIMEOUT_CAP = 10.0
TRANSPORTS = ("auto", "aiohttp", "sdk-aiohttp", "sdk-httpx")


class Failure(Exception):
    """One failed call, whatever the client: `kind` is "status" (the server answered `status`),
    "connect" (it was never reached), "timeout", "dropped" (connected, then no complete answer) or
    "malformed" (an answer that is not JSON); `retry_after` is the server's requested delay."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` / `retry-after` (capped), or None (an HTTP date, or absent)."""
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


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def aiohttp_failure(exc: BaseException) -> Failure | None:
    """The `Failure` for an aiohttp (or asyncio timeout) exception, None for anything else."""
    try:
        import aiohttp
    except ImportError:  # pragma: no cover
        return None
    name = type(exc).__name__
    if isinstance(exc, (aiohttp.ClientConnectorError, getattr(aiohttp, "ConnectionTimeoutError", ()))):
        root = _causes(exc)[-1]
        return Failure("connect", f"connection error: {type(root).__name__}")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Failure("timeout", "request timed out")
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError)):
        return Failure("malformed", f"malformed response: {name}")
    if isinstance(exc, aiohttp.ClientError):
        return Failure("dropped", f"connection error: {name}")
    return None


def sdk_failure(exc: BaseException, sdk: Any = None) -> Failure | None:
    """The `Failure` for an exception of the openai SDK (or of `sdk`, another Stainless-built SDK with the
    same exception classes, e.g. `anthropic`), any transport underneath; None for anything else."""
    if sdk is None:
        import openai as sdk
    openai = sdk

    if isinstance(exc, openai.APIStatusError):
        detail = exc.message if isinstance(exc.message, str) else ""
        return Failure("status", detail, status=exc.status_code, retry_after=retry_after(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("malformed", f"malformed response: {exc}")
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        chain = _causes(exc)
        for e in chain:  # the aiohttp transport maps aiohttp's errors loosely: trust the original
            if type(e).__module__.startswith("aiohttp"):
                return aiohttp_failure(e)
        names = [type(e).__name__ for e in chain]
        if any(n in ("ConnectError", "ConnectTimeout", "ConnectionRefusedError", "gaierror") for n in names):
            return Failure("connect", f"connection error: {names[-1]}")
        if isinstance(exc, openai.APITimeoutError):
            return Failure("timeout", "request timed out")
        return Failure("dropped", f"connection error: {names[-1]}")
    return None


def userinfo_to_basic_auth(url: str) -> tuple[str, dict[str, str]]:
    """Move `user:password@` out of the URL into a Basic `Authorization` header (it replaces the
    Bearer key, as httpx does with URL credentials; aiohttp refuses both at once)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), {
        "Authorization": f"Basic {token}"
    }


def sdk_httpx() -> Any:
    """The httpx module the installed SDK builds on (httpx, or httpx2 in newer releases)."""
    import openai

    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.split(".")[0]
        if root.startswith("httpx"):
            return importlib.import_module(root)
    raise RuntimeError("cannot find the httpx module of the openai SDK")  # pragma: no cover


def aiohttp_available() -> bool:
    """aiohttp can be imported."""
    try:
        importlib.import_module("aiohttp")
    except ImportError:
        return False
    return True


def resolve_transport(name: str) -> str:
    """ "auto" -> "aiohttp" when installed, else "sdk-httpx"; an SDK-over-aiohttp without the SDK's
    aiohttp support falls back to its httpx client."""
    if name == "auto":
        return "aiohttp" if aiohttp_available() else "sdk-httpx"
    if name == "sdk-aiohttp":
        import openai

        if getattr(openai, "DefaultAioHttpClient", None) is None or not aiohttp_available():
            return "sdk-httpx"
    return name


class AiohttpTransport:
    """Chat-completions calls over one aiohttp session (see the module docstring)."""

    def __init__(
        self,
        *,
        url: str,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        timeout: float,
        concurrency: int,
    ) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._base = url.rstrip("/")
        self._query = dict(query) or None
        auth = dict(headers) or {"Authorization": f"Bearer {key}"}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            headers={**auth, "Content-Type": "application/json", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, CONNECT_TIMEOUT_CAP)),
        )

    async def post(self, body: dict[str, Any], path: str = "/chat/completions") -> Any:
        """The parsed JSON reply of one call to `path` under the base URL; raises `Failure`."""
        return await self._send("POST", path, json.dumps(body).encode("utf-8"))

    async def get(self, path: str) -> Any:
        """The parsed JSON reply of a GET of `path` under the base URL (e.g. `/models`); raises `Failure`."""
        return await self._send("GET", path)

    async def _send(self, method: str, path: str, data: bytes | None = None) -> Any:
        try:
            async with self._session.request(method, self._base + path, data=data, params=self._query) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except Exception as exc:  # noqa: BLE001 - mapped below; anything unknown is a bug and re-raised
            failure = aiohttp_failure(exc)
            if failure is None:
                raise
            raise failure from None
        if status >= 400:
            raise Failure("status", _error_message(raw), status=status, retry_after=retry_after(headers))
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise Failure("malformed", f"malformed response body: {str(exc)[:200]}") from None

    async def aclose(self) -> None:
        await self._session.close()


class SDKTransport:
    """Chat-completions calls through the official openai SDK (see the module docstring)."""

    def __init__(
        self,
        *,
        url: str,
        key: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        timeout: float,
        concurrency: int,
        client: str,
    ) -> None:
        import openai

        httpx = sdk_httpx()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        tmo = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_CAP))
        maker = openai.DefaultAioHttpClient if client == "aiohttp" else openai.DefaultAsyncHttpxClient
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=url,
            timeout=tmo,
            max_retries=0,
            default_query=dict(query) or None,
            default_headers=dict(headers) or None,
            http_client=maker(limits=limits, timeout=tmo),
        )
        self._response_type = httpx.Response
        self._sdk = openai
        if query or headers:
            redact_library_logs()

    async def post(self, body: dict[str, Any], path: str = "/chat/completions") -> Any:
        """The parsed JSON reply of one call to `path` under the base URL; raises `Failure`."""
        # client.post = chat.completions.create minus the SDK's TypedDict transform of the body and
        # its pydantic parse of the reply (a third of its CPU per call)
        return await self._parsed(self._client.post(path, body=body, cast_to=self._response_type))

    async def get(self, path: str) -> Any:
        """The parsed JSON reply of a GET of `path` under the base URL (e.g. `/models`); raises `Failure`."""
        return await self._parsed(self._client.get(path, cast_to=self._response_type))

    async def _parsed(self, call: Any) -> Any:
        try:
            resp = await call
        except Exception as exc:  # noqa: BLE001 - mapped below; anything unknown is a bug and re-raised
            failure = sdk_failure(exc, self._sdk)
            if failure is None:
                raise
            raise failure from None
        try:
            return json.loads(resp.content)
        except ValueError as exc:
            raise Failure("malformed", f"malformed response body: {str(exc)[:200]}") from None

    async def aclose(self) -> None:
        await self._client.close()


def make_transport(name: str, **kwargs: Any) -> AiohttpTransport | SDKTransport:
    """A transport by resolved name ("aiohttp", "sdk-aiohttp", "sdk-httpx")."""
    if name == "aiohttp":
        return AiohttpTransport(**kwargs)
    return SDKTransport(client="aiohttp" if name == "sdk-aiohttp" else "httpx", **kwargs)


def _error_message(raw: bytes) -> str:
    try:
        err = json.loads(raw).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        if isinstance(msg, str):
            return msg
    except (ValueError, AttributeError):
        pass
    return raw[:300].decode("utf-8", "replace")


class _RedactFilter(logging.Filter):
    """Removes URL credentials from log records of the SDK and httpx (which log request URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = _RedactFilter()


def redact_library_logs() -> None:
    """Install the credential filter on the loggers of the SDK and its HTTP clients (idempotent)."""
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp.client"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
