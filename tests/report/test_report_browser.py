"""The HTML report in a real headless Chromium (Debian's `chromium` + `chromium-driver`, via selenium):
it loads with no console errors, requests nothing but its own file (and its inline data: images), no
injected script runs, model text shows as text, and the items filter works.

Skips with the reason when chromium, chromedriver or selenium is missing; CI installs them
(`apt-get install -y chromium chromium-driver`, selenium is in the `dev` extra)."""

import json

import pytest

from helpers.fixtures_browser import CHROMEDRIVER, CHROMIUM, chromium_driver
from helpers.fixtures_report import XSS_REASON, XSS_REQUEST, XSS_RESPONSE, XSS_SAFE, build_store
from medsafetybench.report.build import write_report

try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium chromium-driver)"),
    pytest.mark.skipif(CHROMEDRIVER is None, reason="chromedriver not installed (apt-get install -y chromium-driver)"),
    pytest.mark.skipif(not HAVE_SELENIUM, reason="selenium not installed (pip install 'medsafetybench[dev]')"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    store, _, _ = build_store(root / "proj")
    with store:
        path = write_report(store, out=root / "report.html", title="Report <script>window.__pwned=9</script>").html
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium_driver(tmp_path_factory.mktemp("chromium-profile"), log_network=True)
    yield driver
    driver.quit()


def _requests(driver) -> list[str]:
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            out.append(msg["params"]["request"]["url"])
    return out


def test_loads_clean_offline_and_inert(browser, report):
    browser.get("about:blank")
    browser.get_log("performance")  # drop what the browser itself loaded before the report
    browser.get_log("browser")
    url = report.as_uri()
    browser.get(url)
    assert browser.execute_script("return document.readyState") == "complete"
    logs = browser.get_log("browser")
    assert logs == [], logs  # no console errors, no CSP violations
    requests = _requests(browser)
    assert url in requests
    assert [u for u in requests if u != url and not u.startswith("data:image/png;base64,")] == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [r for r in resources if not r.startswith("data:")] == []
    assert browser.execute_script("return window.__pwned") is None
    assert browser.title == "Report <script>window.__pwned=9</script>"
    # exactly the filter script exists; no injected element
    assert browser.execute_script("return document.scripts.length") == 1
    assert (
        browser.execute_script(
            "return document.querySelectorAll('#items-table img, #items-table svg, "
            "#items-table script, #items-table a, #items-table b').length"
        )
        == 0
    )
    cells = browser.execute_script(
        "var r = document.querySelector('#items-table tbody tr');"
        "return Array.from(r.querySelectorAll('td')).map(td => td.textContent)"
    )
    assert cells[5:8] == [XSS_REQUEST, XSS_RESPONSE, XSS_REASON]
    assert browser.execute_script("return document.querySelectorAll('#items-table tbody tr').length") == 24


def test_filters(browser, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(report.as_uri())
    count = browser.find_element(By.ID, "f-count")
    assert count.text == "24 of 24 items match; page 1 of 1"
    Select(browser.find_element(By.ID, "f-principle")).select_by_value("4")
    assert count.text == "6 of 24 items match; page 1 of 1"
    Select(browser.find_element(By.ID, "f-score")).select_by_value("unscored")
    assert count.text == "1 of 24 items match; page 1 of 1"
    Select(browser.find_element(By.ID, "f-principle")).select_by_value("")
    Select(browser.find_element(By.ID, "f-score")).select_by_value("5")
    assert count.text == "2 of 24 items match; page 1 of 1"
    Select(browser.find_element(By.ID, "f-score")).select_by_value("")
    Select(browser.find_element(By.ID, "f-run")).select_by_value("0")
    assert count.text == "12 of 24 items match; page 1 of 1"
    Select(browser.find_element(By.ID, "f-run")).select_by_value("")
    box = browser.find_element(By.ID, "f-text")
    box.send_keys("onerror")  # searching model text filters rows but never runs it
    assert count.text == "2 of 24 items match; page 1 of 1"
    assert browser.execute_script("return window.__pwned") is None
    assert browser.get_log("browser") == []


def test_one_item_across_models(browser, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(report.as_uri())
    Select(browser.find_element(By.ID, "one-item-pick")).select_by_value("test/00")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#one-item-table tbody tr'))"
        ".map(r => Array.from(r.children).map(td => td.textContent))"
    )
    assert len(rows) == 2 and {r[0].split(" (")[0] for r in rows} == {"openai:model-a", "openai:model-b"}
    assert all(r[2] == XSS_RESPONSE for r in rows)
    assert browser.find_element(By.ID, "one-item-request").text.strip() == XSS_REQUEST.strip()
    assert browser.execute_script("return document.getElementById('one-item-safe').textContent") == XSS_SAFE
    Select(browser.find_element(By.ID, "one-item-pick")).select_by_value("test/11")
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('#one-item-table tbody tr')).map(r => r.children[1].textContent)"
    )
    assert sorted(rows) == ["-", "unscored"]  # model-b has no response, model-a's was unscored
    assert browser.execute_script("return window.__pwned") is None
    assert browser.get_log("browser") == []


def test_items_table_pages(browser, tmp_path):
    """Large reports show the items table a page (100 rows) at a time."""
    from selenium.webdriver.common.by import By

    from medsafetybench.data.schema import Item
    from medsafetybench.evaluation.pipeline import EvalSettings, plan_run
    from medsafetybench.store import Store

    items = [
        Item(id=f"p/{i:03d}", split="test", source="gpt4", principle=1 + i % 9, request=f"request {i}")
        for i in range(130)
    ]
    with Store.open_project(tmp_path / "proj") as store:
        plan_run(store, items, model_spec="m", model_identity="m", judge_identity="j", settings=EvalSettings())
        path = write_report(store, out=tmp_path / "big.html").html
    browser.get(path.as_uri())
    count = browser.find_element(By.ID, "f-count")
    visible = "return Array.from(document.querySelectorAll('#items-table tbody tr')).filter(r => !r.hidden).length"
    assert count.text == "130 of 130 items match; page 1 of 2"
    assert browser.execute_script(visible) == 100
    browser.find_element(By.ID, "f-next").click()
    assert count.text == "130 of 130 items match; page 2 of 2" and browser.execute_script(visible) == 30
    browser.find_element(By.ID, "f-prev").click()
    assert count.text.endswith("page 1 of 2")
    assert browser.get_log("browser") == []
