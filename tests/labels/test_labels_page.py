"""The labelling page over real HTTP on 127.0.0.1: labels round-trip into the store as `human:` judgements,
the session token and Host checks, model text that never reaches the page's HTML; then the page in a real
headless Chromium, driven by the keyboard and the mouse, with a planted script that must stay text."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from helpers.fixtures_browser import api_call, chromium_driver, needs_chromium
from helpers.fixtures_report import XSS_RESPONSE, build_store
from medsafetybench.labels.page import LabelServer, rubric
from medsafetybench.labels.sample import draw_sample, run_labels

ANN = "human:ann"


def _project(tmp_path):
    store, a, _ = build_store(tmp_path / "proj")
    with store:
        sample = draw_sample(store, a, 12, seed=0)  # the whole run (12 items with responses)
    return store.path, a, sample


def _call(
    url: str,
    token: str | None,
    body: dict | None = None,
    host: str | None = None,
    ctype: str = "application/json",
    raw: bytes | None = None,
) -> tuple[int, dict]:
    return api_call(url, "X-Label-Token", token, body, host, ctype, raw)


def test_rubric_is_the_papers():
    r = rubric()
    assert len(r) == 5 and r[0]["text"].startswith("The model proactively declines")
    assert r[4]["text"].endswith("direct endorsement of the user's intent.")


def test_label_round_trip(tmp_path):
    db, run, sample = _project(tmp_path)
    first = sample.item_ids[0]
    with LabelServer(db, sample.id, ANN, port=0) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(srv.url, timeout=10) as r:
            page = r.read().decode()
            csp = r.headers["Content-Security-Policy"]
        assert "fixture request" not in page and "onerror" not in page and "innerHTML" not in page
        assert "script-src 'nonce-" in csp and f"'nonce-{srv.nonce}'" in csp
        status, data = _call(srv.url + "api/items", srv.token)
        assert status == 200 and [it["item_id"] for it in data["items"]] == sample.item_ids
        assert data["labeller"] == ANN and data["sample"]["id"] == sample.id and len(data["rubric"]) == 5
        assert all(it["score"] is None and "judge" not in json.dumps(it) for it in data["items"])  # no anchoring
        xss = next(it for it in data["items"] if it["item_id"] == "test/00")
        assert xss["response"] == XSS_RESPONSE
        st, item = _call(srv.url + "api/label", srv.token, {"item_id": first, "score": 4})
        assert st == 200 and item["score"] == 4 and item["labelled_at"] > 0
        assert _call(srv.url + "api/label", srv.token, {"item_id": first, "score": 2})[1]["score"] == 2
        # refusals: no token, wrong token, foreign Host (DNS rebinding), not JSON, bad score or item
        assert _call(srv.url + "api/label", None, {"item_id": first, "score": 1})[0] == 403
        assert _call(srv.url + "api/label", "wrong", {"item_id": first, "score": 1})[0] == 403
        assert _call(srv.url + "api/items", srv.token, host="evil.example:80")[0] == 403
        assert _call(srv.url, None, host="evil.example")[0] == 403
        assert _call(srv.url + "api/items", None)[0] == 403
        assert _call(srv.url + "api/label", srv.token, {"item_id": first, "score": 1}, ctype="text/plain")[0] == 415
        for bad in (
            {"item_id": first, "score": 6},
            {"item_id": first, "score": "3"},
            {"item_id": first, "score": True},
            {"item_id": "nope", "score": 3},
            {"score": 3},
            [1],
        ):
            assert _call(srv.url + "api/label", srv.token, bad)[0] == 400, bad
        assert _call(srv.url + "api/label", srv.token, raw=b"{not json")[0] == 400
        assert _call(srv.url + "api/other", srv.token, {"x": 1})[0] == 404
        # resumable: a new session sees the label
    with LabelServer(db, sample.id, ANN, port=0) as srv:
        items = _call(srv.url + "api/items", srv.token)[1]["items"]
        assert [it["score"] for it in items if it["score"] is not None] == [2]
    from medsafetybench.store import Store

    with Store(db) as store:  # written at once, as the human judge attached to the run
        assert {k: v.score for k, v in run_labels(store, run, ANN).items()} == {first: 2}
        assert ANN in store.run(run).judges


@needs_chromium
def test_label_page_in_headless_chromium(tmp_path):
    """Planted `<script>`/onerror in a response stay text; keys 1-5, arrows and n/p, and the mouse label."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    db, run, sample = _project(tmp_path)
    ids = sample.item_ids
    assert "test/00" in ids[3:]  # the seed puts the planted script after the items labelled first
    drv = chromium_driver()

    def shown(d) -> str:
        return d.find_element(By.ID, "iid").text

    try:
        with LabelServer(db, sample.id, ANN, port=0) as srv:
            drv.get(srv.url)
            WebDriverWait(drv, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
            body = drv.find_element(By.TAG_NAME, "body")
            assert shown(drv) == ids[0] and "1 of 12" in drv.find_element(By.ID, "progress").text
            body.send_keys("3")  # keyboard: score, then the next item
            WebDriverWait(drv, 10).until(lambda d: shown(d) == ids[1])
            body.send_keys(Keys.ARROW_RIGHT)
            assert shown(drv) == ids[2]
            body.send_keys("n")
            assert shown(drv) == ids[3]
            body.send_keys("p")
            body.send_keys(Keys.ARROW_LEFT)
            assert shown(drv) == ids[1]
            drv.find_element(By.ID, "score-5").click()  # mouse: a score button
            WebDriverWait(drv, 10).until(lambda d: shown(d) == ids[2])
            drv.find_element(By.ID, "prev").click()
            assert shown(drv) == ids[1] and drv.find_element(By.ID, "status").text == "labelled 5"
            assert "chosen" in drv.find_element(By.ID, "score-5").get_attribute("class")
            drv.find_element(By.ID, "next").click()
            while shown(drv) != "test/00":  # go to the item whose response carries a script
                drv.find_element(By.ID, "next").click()
            assert drv.find_element(By.ID, "response").text == XSS_RESPONSE  # shown as text
            assert drv.find_elements(By.CSS_SELECTOR, "#response script, #response img, #request script") == []
            assert drv.execute_script("return window.__pwned === undefined") is True  # no script or onerror ran
            assert drv.title == "MedSafetyBench labelling"
            body.send_keys("1")
            WebDriverWait(drv, 10).until(
                lambda d: (
                    "labelled" in d.find_element(By.ID, "message").text
                    or "saved" in d.find_element(By.ID, "message").text
                )
            )
            assert "3 labelled" in drv.find_element(By.ID, "progress").text
    finally:
        drv.quit()
    from medsafetybench.store import Store

    with Store(db) as store:
        got = {k: v.score for k, v in run_labels(store, run, ANN).items()}
    assert got == {ids[0]: 3, ids[1]: 5, "test/00": 1}
