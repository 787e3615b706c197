"""HTTP plumbing of the `openai:` backend: which transport the SDK gets, how a failure is classified
(connect failure or not, the server's Retry-After), and keeping URL credentials out of the request
line and of the SDK's and httpx's log records.
"""

from __future__ import annotations

import base64
import importlib
import logging
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import openai

from .redact import redact_text

RETRY_AFTER_CAP = 120.0


def retry_after(exc: openai.APIStatusError) -> float | None:
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


def causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def connect_failure(exc: BaseException) -> bool:
    """True when the request never reached the server (refused, DNS, connect timeout) rather than
    being dropped or answered: the only failures that make a server count as unreachable."""
    names = [type(e).__name__ for e in causes(exc)]
    if "ServerDisconnectedError" in names or "RemoteProtocolError" in names:
        return False  # connected, then dropped
    aio = [e for e in causes(exc) if type(e).__module__.startswith("aiohttp")]
    if aio:  # the aiohttp transport maps every connection error to ConnectTimeout: look underneath
        return any(type(e).__name__ in ("ClientConnectorError", "ClientConnectorDNSError",
                                        "ConnectionTimeoutError") for e in aio)
    return any(n in ("ConnectError", "ConnectTimeout", "ConnectionRefusedError", "gaierror") for n in names)


def sdk_httpx() -> Any:
    """The httpx module the installed SDK builds on (httpx, or httpx2 in newer releases)."""
    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.split(".")[0]
        if root.startswith("httpx"):
            return importlib.import_module(root)
    raise RuntimeError("cannot find the httpx module of the openai SDK")  # pragma: no cover


def aiohttp_available() -> bool:
    if getattr(openai, "DefaultAioHttpClient", None) is None:
        return False
    try:
        importlib.import_module("aiohttp")
    except ImportError:
        return False
    return True


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
        "Authorization": f"Basic {token}"}


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
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp.client"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
