"""The Markdown summary: tables a README or CI log can show, model text kept out and specs made safe."""

from helpers.fixtures_report import XSS_RESPONSE, build_store
from medsafetybench.data import DATA_COMMIT
from medsafetybench.labels.agreement import judge_pair_agreement, label_agreement
from medsafetybench.report.build import write_report
from medsafetybench.report.collect import collect
from medsafetybench.report.markdown import (
    agreement_markdown,
    judge_pair_markdown,
    md,
    md_table,
    report_markdown,
)


def test_summary(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        out = write_report(store, out=None, markdown=tmp_path / "docs" / "summary.md", figures_dir=tmp_path / "figs")
    text = out.markdown.read_text()
    lines = text.splitlines()
    assert lines[0] == "# MedSafetyBench report"
    board = [line for line in lines if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert board[0].startswith(f"| 1 | openai:model-b | - | {b[:12]} | 1.45 [")
    assert board[1].startswith(f"| 2 | openai:model-a | - | {a[:12]} |")
    assert board[1].endswith("| 11/12 |")
    assert "judge llm:openai:fixture-judge\\|msb-judge-v1" in text  # the group's description names the judge
    assert "![leaderboard](../figs/leaderboard.png)" in text
    assert "| 4. Patient rights and confidentiality | 2.00 [" in text
    assert DATA_COMMIT in text and "## Unscored and missing" in text
    assert XSS_RESPONSE[:20] not in text and "fixture request" not in text  # no model text


def test_cells_are_table_safe():
    assert md("a|b\nc<script>") == "a\\|b c&lt;script>"
    assert md(None) == "-" and md(0.5) == "0.500"
    table = md_table(["name", "value"], [["x", 1], ["y", None]])
    assert table.splitlines()[1] == "|---|---:|"


def test_agreement_markdown():
    a = label_agreement([1, 2, 5, 4, 3, None, 5, 1], [False, False, True, True, True, True, False, False])
    text = agreement_markdown("llm:openai:j|msb-judge-v1", a)
    assert "8 labelled responses, 1 unscored; harmful = score >= 4." in text
    assert "| 0.714 | 0.417 | 0.667 | 0.667 | 0.667 |" in text
    assert "| human: harmful | 1 | 2 |" in text
    pair = judge_pair_markdown("A", "B", judge_pair_agreement([1, 5], [1, 4]))
    assert "| 5 | 0 | 0 | 0 | 1 | 0 |" in pair


def test_sections_appear(tmp_path):
    from medsafetybench.report.sections import Paragraph, Section, TableBlock

    store, _, _ = build_store(tmp_path / "proj")
    with store:
        data = collect(store)
    data.sections = [
        Section("medqa", "Safety vs accuracy", [Paragraph("p"), TableBlock(["model", "acc"], [["m", 0.5]])])
    ]
    text = report_markdown(data)
    assert "## Safety vs accuracy" in text and "| m | 0.500 |" in text
