"""The HTML report on a store built from fixture data: contents, numbers, escaping, self-containment."""

import base64
import hashlib
import html
import re

import pytest

from helpers.fixtures_report import JUDGE, XSS_REASON, XSS_REQUEST, XSS_RESPONSE, build_store
from medsafetybench.data import DATA_COMMIT
from medsafetybench.report.build import write_report
from medsafetybench.report.collect import collect
from medsafetybench.report.figures import report_figures
from medsafetybench.report.html import CSP, FILTER_SCRIPT, esc, render_html
from medsafetybench.report.sections import (
    FigureBlock,
    Paragraph,
    Section,
    TableBlock,
    register_section_provider,
    unregister_section_provider,
)


@pytest.fixture
def store(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    yield store, a, b
    store.close()


@pytest.fixture
def page(store, tmp_path):
    s, _, _ = store
    out = write_report(s, out=tmp_path / "report.html")
    return out.html.read_text(encoding="utf-8"), out.data


def _rows(page_html: str, table_id: str) -> list[list[str]]:
    body = page_html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_leaderboard_golden(page, store):
    text, data = page
    _, a, b = store
    # model-b: 11 scored, 16/11 = 1.45; model-a: 11 scored of 12 (one unscored), 26/11 = 2.36; safest first
    assert [r.info.id for r in data.runs] == [b, a]
    rows = _rows(text, "leaderboard-table")
    assert [r[0] for r in rows] == ["1", "2"]
    # columns: #, model, group, run, scored/items, harmfulness, harmful share, refusal rate, unscored
    assert rows[0][1] == "openai:model-b" and rows[0][3] == b[:12] and JUDGE in text
    assert rows[0][4] == "11/12" and rows[0][5].startswith("1.45 [") and rows[0][8] == "0"
    assert rows[1][4] == "11/12" and rows[1][5].startswith("2.36 [") and rows[1][8] == "1"
    # share >= 4 for model-a: the 5, 4 and 5 -> 3/11
    assert rows[1][6].startswith("0.27 [")
    assert rows[0][7] != "-"  # a refusal rate for every run
    assert data.runs[1].summary.overall.harmfulness.value == pytest.approx(26 / 11)


def test_principles_sources_unscored_provenance(page):
    text, _ = page
    principle_rows = _rows(text, "by-principle")
    names = [r[0] for r in principle_rows]
    assert names == [
        "1. Competent, compassionate care",
        "2. Professionalism and honesty",
        "3. Respect for the law",
        "4. Patient rights and confidentiality",
    ]
    # principle 4 = items 3, 7, 11: model-a 5, 1, unscored -> 3.00 with n 2/3
    assert principle_rows[3][2].startswith("3.00 [") and "(n=2/3)" in principle_rows[3][2]
    assert [r[0] for r in _rows(text, "by-source")] == ["gpt4", "llama2"]
    unscored = _rows(text, "unscored")
    assert unscored[0][1:] == ["12", "11", "0", "1", "0"]  # model-b: item 11 has no response
    assert unscored[1][1:] == ["12", "11", "1", "0", "0"]  # model-a: item 11 unscored
    prov = text.split('id="provenance"', 1)[1]
    for needle in (DATA_COMMIT, JUDGE, "msb-judge-v1", "matplotlib", "numpy", "medsafetybench", "max_new_tokens"):
        assert esc(needle) in prov


def test_items_table_escapes_everything(page):
    text, _ = page
    for payload in (XSS_REQUEST, XSS_RESPONSE, XSS_REASON):
        assert esc(payload) in text
    assert "<img src=x" not in text and "<svg onload" not in text and "<b>bold" not in text
    # exactly one script element: the filter, whose hash the CSP names
    assert text.count("<script") == 1 and f"<script>{FILTER_SCRIPT}</script>" in text
    digest = base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CSP and esc(CSP) in text
    items = _rows(text, "items-table")
    assert len(items) == 24
    first = next(r for r in items if r[1] == "test/00")
    assert first[5] == XSS_REQUEST and first[6] == XSS_RESPONSE and first[7] == XSS_REASON
    unscored = next(r for r in items if r[1] == "test/11" and r[4] == "unscored")
    assert "I cannot rate this <b>" in unscored[7]  # the raw judge output is shown, as text
    assert next(r for r in items if r[1] == "test/11" and r[4] == "-")[6].startswith("(no response")
    # row attributes the filter reads
    assert text.count('data-score="unscored"') == 1 and text.count('data-score="none"') == 1
    assert text.count('data-principle="4"') == 6


def test_self_contained(page):
    text, _ = page
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr.startswith(("data:image/png;base64,", "#")), attr
    assert "<link" not in text and "@import" not in text and "url(" not in text
    # leaderboard, harmfulness and refusal, scores, heatmap, principle, source
    assert text.count("data:image/png;base64,") == 6


def test_extra_sections_are_rendered_escaped(store, tmp_path):
    s, _, _ = store
    import matplotlib.pyplot as plt

    def provider(store, runs):
        fig, ax = plt.subplots()
        ax.plot([100, 500, 900], [2.1, 1.6, 1.2])
        return [
            Section(
                "finetune-sweep",
                "Fine-tuning <sweep>",
                order=50,
                blocks=[
                    Paragraph("Harmfulness against n <em>"),
                    TableBlock(["n", "harmfulness"], [[100, 2.1], [900, None]]),
                    FigureBlock("ft-sweep", fig, "sweep"),
                ],
            )
        ]

    register_section_provider(provider)
    try:
        data = collect(s)
        text = render_html(data, report_figures(data))
    finally:
        unregister_section_provider(provider)
    # the fixture's API models (openai:model-a, -b) have no price: the cost section shows them as unknown
    assert [sec.key for sec in data.sections] == ["finetune-sweep", "cost"]
    assert '<section id="finetune-sweep"><h2>Fine-tuning &lt;sweep&gt;</h2>' in text
    assert "Harmfulness against n &lt;em&gt;" in text and '<a href="#finetune-sweep">' in text
    assert [r for r in _rows(text, "finetune-sweep")] == [["100", "2.100"], ["900", "-"]]
    assert 'id="fig-ft-sweep"' in text
    # extras sit between the built-in results and provenance
    assert text.index('id="unscored"') < text.index('id="finetune-sweep"') < text.index('id="provenance"')
    assert "finetune-sweep" not in render_html(collect(s))


def test_only_named_runs(store, tmp_path):
    s, a, _ = store
    data = collect(s, [a[:6]])
    assert [r.info.id for r in data.runs] == [a]
