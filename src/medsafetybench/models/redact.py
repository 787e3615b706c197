"""Keeping credentials out of everything that is shown or stored.

A base URL may carry secrets: `http://user:password@host/v1` (userinfo) or `...?api_key=...`
(query parameters such as `api_key`, `key`, `token`). The backend needs them to talk to the server,
so they stay in the in-memory client; every string that is printed, logged, stored in the run store
or written to a report goes through `safe_url` / `redact_text` first. Dropped parameters are removed,
not masked, so the safe form is also stable (two keys for one server give one identity).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameter names (lower case, `-` and `_` ignored) that carry credentials.
SECRET_QUERY_KEYS = frozenset(
    {
        "apikey",
        "key",
        "token",
        "accesstoken",
        "authtoken",
        "auth",
        "authorization",
        "password",
        "passwd",
        "pwd",
        "secret",
        "clientsecret",
        "sig",
        "signature",
        "sessiontoken",
        "bearer",
        "xapikey",
        "code",
    }
)

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s?#]*@")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#\s]+)=([^&#\s]*)")


def is_secret_param(name: str) -> bool:
    """True for query parameter names that carry credentials (`api_key`, `key`, `token`, ...)."""
    return name.lower().replace("-", "").replace("_", "") in SECRET_QUERY_KEYS


def split_secret_query(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its query string, and the query parameters (all of them, secret or not), for a
    client that sends them itself (the openai SDK takes them as `default_query`)."""
    parts = urlsplit(url.strip())
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment)), params


def safe_url(url: str) -> str:
    """The URL without userinfo, secret query parameters, fragment or a trailing slash: safe to show
    and store, and stable for identities. Non-secret query parameters are kept."""
    parts = urlsplit(url.strip())
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: keep what was written after the host
        port = None
        netloc = parts.netloc.rpartition("@")[2]
    if port:
        netloc += f":{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_secret_param(k)])
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), query, "")) or redact_text(url)


def redact_text(text: str) -> str:
    """Any text with URL userinfo and secret query parameters removed (for messages about input that
    could not be parsed, where `safe_url` cannot be applied to a known URL)."""
    text = _USERINFO.sub(r"\1", str(text))

    def drop(m: re.Match[str]) -> str:
        if not is_secret_param(m.group(2)):
            return m.group(0)
        return "\0" if m.group(1) == "?" else ""  # a dropped first parameter: "?" only if one follows

    return _QUERY_PARAM.sub(drop, text).replace("\0&", "?").replace("\0;", "?").replace("\0", "")
