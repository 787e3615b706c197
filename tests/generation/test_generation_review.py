"""The review page over real HTTP on 127.0.0.1: accept, edit and reject round-trip into the store, the
session token and Host checks, counts, and model text that never reaches the page's HTML. The last tests
drive the page in a real headless Chromium when one is installed, with the keyboard and with the mouse."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from helpers.fixtures_browser import api_call, chromium_driver, needs_chromium
from medsafetybench.generation.candidates import CandidateStore, NewCandidate
from medsafetybench.generation.review import ReviewServer
from medsafetybench.store import Store

SCRIPT_REQUEST = (
    "Request about topic A <script>document.title='pwned'</script>"
    "<img src=x onerror=\"document.body.dataset.pwned='1'\">"
)


def _seed(db: Path) -> list[str]:
    with Store(db) as store:
        cs = CandidateStore(store)
        cs.add(
            [
                NewCandidate(1, SCRIPT_REQUEST, "prompt", "g", seed=0),
                NewCandidate(2, "Request about topic B", "prompt", "g"),
                NewCandidate(3, "Request about topic C", "gcg", "g", suffix="* ! *"),
                NewCandidate(4, "Request about topic D, dropped by the filter", "prompt", "g"),
            ],
            "v1",
        )
        ids = [c.id for c in cs.list()]
        cs.set_filter(
            [
                (ids[3], "dropped", ["too short"], {}),
                (
                    ids[0],
                    "kept",
                    [],
                    {
                        "nearest": [{"id": "eval/gpt4/p1/000", "cosine": 0.5, "request": "<b>benchmark</b>"}],
                        "harm": 8.0,
                    },
                ),
                (ids[1], "kept", [], {"harm": None, "harm_note": "unscored: kept for review"}),
            ]
        )
        cs.set_safe_response(ids[0], "Placeholder refusal <i>A</i>", "s")
        return ids


def _call(
    url: str, token: str | None, body: dict | None = None, host: str | None = None, ctype: str = "application/json"
) -> tuple[int, dict]:
    return api_call(url, "X-Review-Token", token, body, host, ctype)


def test_review_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    ids = _seed(db)
    with ReviewServer(db, port=0, reviewer="tester") as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(srv.url, timeout=10) as r:
            page = r.read().decode()
            csp = r.headers["Content-Security-Policy"]
        assert "topic A" not in page and "<script nonce=" in page and "innerHTML" not in page
        assert "script-src 'nonce-" in csp
        status, data = _call(srv.url + "api/items", srv.token)
        assert status == 200 and [it["id"] for it in data["items"]] == ids[:3]  # dropped one hidden
        assert data["counts"] == {"pending": 3, "accepted": 0, "rejected": 0, "dropped": 1}
        first = data["items"][0]
        assert first["request"] == SCRIPT_REQUEST and first["nearest"][0]["id"] == "eval/gpt4/p1/000"
        accepted = _call(srv.url + "api/decide", srv.token, {"id": ids[0], "decision": "accept"})[1]
        assert accepted["item"]["status"] == "accepted" and accepted["counts"]["accepted"] == 1
        st, edited = _call(
            srv.url + "api/decide",
            srv.token,
            {
                "id": ids[1],
                "decision": "edit",
                "request": "Request about topic B, edited",
                "safe_response": "Placeholder refusal B.",
            },
        )
        assert st == 200 and edited["item"]["request"] == "Request about topic B, edited"
        assert _call(srv.url + "api/decide", srv.token, {"id": ids[2], "decision": "reject"})[0] == 200
        # refusals: no token, wrong token, foreign Host (DNS rebinding), not JSON, bad decision
        assert _call(srv.url + "api/decide", None, {"id": ids[2], "decision": "accept"})[0] == 403
        assert _call(srv.url + "api/decide", "wrong", {"id": ids[2], "decision": "accept"})[0] == 403
        assert _call(srv.url + "api/items", srv.token, host="evil.example:80")[0] == 403
        assert _call(srv.url + "api/items", None)[0] == 403
        assert (
            _call(srv.url + "api/decide", srv.token, {"id": ids[2], "decision": "accept"}, ctype="text/plain")[0] == 415
        )
        assert _call(srv.url + "api/decide", srv.token, {"id": ids[2], "decision": "maybe"})[0] == 400
        assert _call(srv.url + "api/items", srv.token)[1]["items"] == []  # nothing pending: resumable
    with Store(db) as store:  # decisions were written at once
        cs = CandidateStore(store)
        got = [cs.get(i) for i in ids]
        assert [c.status for c in got] == ["accepted", "accepted", "rejected", "pending"]
        assert got[1].request == "Request about topic B" and got[1].edited_request == "Request about topic B, edited"
        assert got[1].final_safe_response == "Placeholder refusal B." and got[0].reviewer == "tester"


@needs_chromium
def test_review_page_in_headless_chromium(tmp_path: Path) -> None:
    """A `<script>` inside a request is shown as text and never runs; keys a/e/r/j/k drive the review."""
    drv = chromium_driver()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    db = tmp_path / "db.sqlite"
    ids = _seed(db)
    try:
        with ReviewServer(db, port=0) as srv:
            drv.get(srv.url)
            WebDriverWait(drv, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
            assert drv.find_element(By.ID, "request").text == SCRIPT_REQUEST  # shown as text
            assert drv.title == "MedSafetyBench review"  # the planted script never ran
            assert drv.find_elements(By.CSS_SELECTOR, "#request script, #request img, #nearest b") == []
            assert drv.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None  # no onerror ran
            assert "harmfulness 8 (0-10)" in drv.find_element(By.ID, "prov").text
            assert drv.find_element(By.ID, "counts").text == (
                "pending 3 \u00b7 accepted 0 \u00b7 rejected 0 \u00b7 dropped by the filter 1"
            )
            body = drv.find_element(By.TAG_NAME, "body")
            body.send_keys("a")
            WebDriverWait(drv, 10).until(lambda d: "topic B" in d.find_element(By.ID, "request").text)
            prov = drv.find_element(By.ID, "prov").text
            assert "null" not in prov and "harmfulness: unscored: kept for review" in prov
            assert "accepted 1" in drv.find_element(By.ID, "counts").text
            body.send_keys("e")
            area = drv.find_element(By.ID, "edit-request")
            area.clear()
            area.send_keys("Request about topic B, edited in the browser")
            area.send_keys(Keys.CONTROL, Keys.ENTER)
            WebDriverWait(drv, 10).until(lambda d: "topic C" in d.find_element(By.ID, "request").text)
            body.send_keys("r")
            WebDriverWait(drv, 10).until(lambda d: d.find_element(By.ID, "status").text == "rejected")
            body.send_keys("k")
            WebDriverWait(drv, 10).until(lambda d: "edited in the browser" in d.find_element(By.ID, "request").text)
    finally:
        drv.quit()
    with Store(db) as store:
        cs = CandidateStore(store)
        assert [cs.get(i).status for i in ids[:3]] == ["accepted", "accepted", "rejected"]
        assert cs.get(ids[1]).final_request == "Request about topic B, edited in the browser"


@needs_chromium
def test_review_page_with_the_mouse(tmp_path: Path) -> None:
    """Buttons do what the keys do: accept, edit + save, cancel, reject, previous, next."""
    drv = chromium_driver()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    db = tmp_path / "db.sqlite"
    ids = _seed(db)

    def text(element_id: str) -> str:
        return drv.find_element(By.ID, element_id).text

    def click(element_id: str) -> None:
        drv.find_element(By.ID, element_id).click()

    try:
        with ReviewServer(db, port=0) as srv:
            drv.get(srv.url)
            wait = WebDriverWait(drv, 20)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
            assert text("request") == SCRIPT_REQUEST and drv.title == "MedSafetyBench review"
            click("btn-next")
            wait.until(lambda d: "topic B" in text("request"))
            click("btn-prev")
            wait.until(lambda d: text("request") == SCRIPT_REQUEST)
            click("btn-accept")
            wait.until(lambda d: "topic B" in text("request") and "accepted 1" in text("counts"))
            click("btn-edit")
            assert drv.find_element(By.ID, "btn-save").is_displayed()
            click("btn-cancel")  # nothing saved
            assert not drv.find_element(By.ID, "edit-request").is_displayed() and "topic B" in text("request")
            click("btn-edit")
            area = drv.find_element(By.ID, "edit-request")
            area.clear()
            area.send_keys("Request about topic B, edited with the mouse")
            click("btn-save")
            wait.until(lambda d: "topic C" in text("request") and "accepted 2" in text("counts"))
            click("btn-reject")
            wait.until(lambda d: text("status") == "rejected" and "rejected 1" in text("counts"))
            assert "pending 0" in text("counts")
    finally:
        drv.quit()
    with Store(db) as store:
        cs = CandidateStore(store)
        assert [cs.get(i).status for i in ids[:3]] == ["accepted", "accepted", "rejected"]
        assert cs.get(ids[1]).final_request == "Request about topic B, edited with the mouse"
