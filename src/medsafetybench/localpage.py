"""A local page for people: a fixed HTML document served on 127.0.0.1 with a small JSON API, the base of
the candidate review page (`generation/review.py`) and the labelling page (`labels/page.py`).

What every such page gets here, so no page can forget it: it listens on 127.0.0.1 only; every request
must carry a Host header naming 127.0.0.1/localhost (DNS rebinding fails); every API call must carry the
session's random token in the page's token header (given to the page only, so other web pages can neither
read nor post); a Content-Security-Policy with a per-session nonce allows only the page's own script and
style; answers are never cached; POST bodies must be JSON objects under a size limit. The page inserts
model text with `textContent` only (each page's own script). The store is opened on the server's own
thread (SQLite connections belong to one thread) by `setup()`, and every POST is written before the reply.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from .errors import UserError

API_JS = """const token = "__TOKEN__";
const $ = (id) => document.getElementById(id);
async function api(path, body) {
  const opts = {headers: {"__TOKEN_HEADER__": token}};
  if (body !== undefined) { opts.method = "POST"; opts.headers["Content-Type"] = "application/json";
                            opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error("HTTP " + r.status + ": " + await r.text());
  return r.json();
}"""
"""The pages' shared script: the page token (in no URL) and a JSON API call that sends it."""


class LocalPageServer:
    """Subclass and set `name`, `token_header`, `page_html` (with `__TOKEN__` / `__NONCE__` placeholders, and
    `__API_JS__` where the script wants `API_JS`: `$(id)` and `api(path[, body])`, the token sent) and
    `max_body`; implement `setup()` / `teardown()` (on the server thread), `api_get(path)` and
    `api_post(path, body)`. `api_*` return a JSON-able object, raise `LookupError` for 404 and
    `ValueError`/`UserError` for 400."""

    name = "local-page"
    token_header = "X-Page-Token"
    page_html = ""
    max_body = 1 << 16

    def __init__(self, db_path: str | Path, *, port: int = 0) -> None:
        self.db_path = Path(db_path)
        self.token = secrets.token_urlsafe(24)
        self.nonce = secrets.token_urlsafe(16)
        self._port = port
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- what a page implements ---------------------------------------------------------------------
    def setup(self) -> None:
        """Open the store and load what the page needs (runs on the server thread)."""

    def teardown(self) -> None:
        """Close what `setup` opened (runs on the server thread)."""

    def api_get(self, path: str) -> Any:
        raise LookupError(path)

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        raise LookupError(path)

    # --- serving ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def html(self) -> str:
        page = self.page_html.replace("__API_JS__", API_JS.replace("__TOKEN_HEADER__", self.token_header))
        return page.replace("__TOKEN__", self.token).replace("__NONCE__", self.nonce)

    def start(self) -> LocalPageServer:
        handler = type("Handler", (_Handler,), {"page": self, "server_version": f"medsafety-{self.name}"})
        try:
            self._httpd = HTTPServer(("127.0.0.1", self._port), handler)
        except OSError as exc:
            raise UserError(
                f"--port {self._port}: cannot listen on 127.0.0.1 ({exc.strerror}); "
                "choose another port or 0 for any free one"
            ) from None
        self._thread = threading.Thread(target=self._serve, name=f"{self.name}-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            self.stop()
            raise self._error
        return self

    def _serve(self) -> None:
        try:
            self.setup()
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            assert self._httpd is not None
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self.teardown()

    def stop(self) -> None:
        if self._httpd is not None:
            if self._error is None:
                self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(10)
            self._httpd = None

    def __enter__(self) -> LocalPageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self) -> None:
        """Block until Ctrl+C (the server runs on its own thread), then stop it."""
        import time

        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


class _Handler(BaseHTTPRequestHandler):
    page: LocalPageServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src 'nonce-{self.page.nonce}'; "
            f"style-src 'nonce-{self.page.nonce}'; connect-src 'self'; frame-ancestors 'none'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost")

    def _authorised(self) -> bool:
        given = self.headers.get(self.page.token_header) or ""
        return self._host_ok() and secrets.compare_digest(given, self.page.token)

    def _api(self, call: Any) -> None:
        try:
            return self._json(200, call())
        except LookupError:
            return self._json(404, {"error": "not found"})
        except (ValueError, UserError) as exc:
            return self._json(400, {"error": str(exc)})

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(403, {"error": "bad Host header"})
        path = self.path.split("?", 1)[0]
        if path == "/":
            return self._send(200, self.page.html().encode("utf-8"), "text/html; charset=utf-8")
        if not path.startswith("/api/"):
            return self._json(404, {"error": "not found"})
        if not self._authorised():
            return self._json(403, {"error": f"missing or wrong {self.page.token_header}"})
        return self._api(lambda: self.page.api_get(path))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if not path.startswith("/api/"):
            return self._json(404, {"error": "not found"})
        if not self._authorised():
            return self._json(403, {"error": f"missing or wrong {self.page.token_header}"})
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._json(415, {"error": "send application/json"})
        length = self.headers.get("Content-Length") or "0"
        length = int(length) if length.isdigit() else 0
        if not 0 < length <= self.page.max_body:
            return self._json(400, {"error": "body missing or too large"})
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return self._json(400, {"error": "the body is not JSON"})
        if not isinstance(body, dict):
            return self._json(400, {"error": "the body must be a JSON object"})
        return self._api(lambda: self.page.api_post(path, body))
