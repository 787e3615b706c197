"""Credentials in URLs never survive `safe_url` / `redact_text`; other parts of the URL do."""

from __future__ import annotations

import pytest

from medsafetybench.models.redact import is_secret_param, redact_text, safe_url, split_secret_query

S = "hunter2-XYZ"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (f"http://user:{S}@Host:8000/v1/", "http://host:8000/v1"),
        (f"https://{S}@api.example.com/v1", "https://api.example.com/v1"),
        (f"http://h/v1?api_key={S}", "http://h/v1"),
        (f"http://h/v1?api-version=2024&key={S}&token={S}", "http://h/v1?api-version=2024"),
        (f"http://h/v1?X-Api-Key={S}#frag", "http://h/v1"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
    ],
)
def test_safe_url(url, safe):
    assert safe_url(url) == safe


@pytest.mark.parametrize(
    "text",
    [
        f"openai:m@http://u:{S}@h:1/v1 failed",
        f"see http://h/v1?a=1&access_token={S}&b=2",
        f"openai:m@http://h/v1?api_key={S}",
        f"'nope:x@https://{S}@h/v1?sig={S}'",
    ],
)
def test_redact_text_removes_every_secret(text):
    out = redact_text(text)
    assert S not in out
    assert "http" in out


def test_redact_text_keeps_plain_text_and_other_parameters():
    assert redact_text("is the server running? yes") == "is the server running? yes"
    assert redact_text(f"http://h/v1?key={S}&model=x more") == "http://h/v1?model=x more"
    assert redact_text(f"http://h/v1?key={S} more") == "http://h/v1 more"


def test_split_secret_query_keeps_everything_for_the_client():
    base, params = split_secret_query(f"http://u:{S}@h/v1?api_key={S}&x=1")
    assert base == f"http://u:{S}@h/v1" and params == {"api_key": S, "x": "1"}
    assert is_secret_param("API-KEY") and is_secret_param("access_token") and not is_secret_param("model")
