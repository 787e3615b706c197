"""Shared by the browser and local-page tests: a headless Chromium driven by selenium (Debian's
`chromium` + `chromium-driver`; tests skip with the reason when either is missing) and a JSON call to a
local page's API with its token header."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs a headless Chromium: apt-get install chromium chromium-driver",
)


def chromium_driver(profile: Path | None = None, *, log_network: bool = False) -> Any:
    """A headless Chromium with no background networking (the machine has no internet)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install 'medsafetybench[dev]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,1000",
    ]
    if profile is not None:
        args.append(f"--user-data-dir={profile}")
    for arg in args:
        opts.add_argument(arg)
    if log_network:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=opts)


def api_call(
    url: str,
    token_header: str,
    token: str | None,
    body: dict | None = None,
    host: str | None = None,
    ctype: str = "application/json",
    raw: bytes | None = None,
) -> tuple[int, dict]:
    """GET (no body) or POST a local page's JSON API; returns (status, decoded reply)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if token is not None:
        req.add_header(token_header, token)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
