"""Figures: every built-in and agreement figure is written as a valid, non-empty PNG and an SVG."""

import struct
import xml.etree.ElementTree as ET

import pytest

from helpers.fixtures_report import build_store
from medsafetybench.labels.agreement import judge_pair_agreement, label_agreement
from medsafetybench.report import figures as figs
from medsafetybench.report.build import write_report
from medsafetybench.report.collect import collect

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100
    assert b"IDAT" in data and data.rstrip().endswith(b"IEND\xaeB`\x82")
    assert len(data) > 2000  # something was drawn
    return width, height


def test_report_figures_are_written(tmp_path):
    store, _, _ = build_store(tmp_path / "proj")
    with store:
        out = write_report(store, out=None, figures_dir=tmp_path / "figs")
    names = sorted(p.name for p in out.figures)
    assert names == sorted(
        f"{n}.{e}"
        for n in ("leaderboard", "harm-refusal", "heatmap", "by-principle", "by-source", "score-distribution")
        for e in ("png", "svg")
    )
    for p in out.figures:
        if p.suffix == ".png":
            assert_png(p.read_bytes())
        else:
            root = ET.parse(p).getroot()
            assert root.tag.endswith("svg") and len(p.read_bytes()) > 2000
    assert out.html is None  # only what was asked for


def test_agreement_figures(tmp_path):
    a = label_agreement([1, 2, 5, 4, 3, None, 5, 1], [False, False, True, True, True, True, False, False])
    pair = judge_pair_agreement([1, 2, 5, 4, 3], [1, 3, 5, 5, 3])
    blocks = [
        figs.threshold_figure(a, "llm:openai:judge|msb-judge-v1"),
        figs.confusion_figure(a),
        figs.judge_pair_figure(pair, "judge $A$", "judge B"),
    ]
    try:
        for b in blocks:
            png, svg = figs.save_figure(b, tmp_path)
            assert_png(png.read_bytes())
            assert_png(figs.png_bytes(b))
            assert ET.parse(svg).getroot().tag.endswith("svg")
    finally:
        figs.close(blocks)


def test_labels_are_not_mathtext(tmp_path):
    """A `$` in a model spec must not reach matplotlib's mathtext parser (it would raise)."""
    store, _, _ = build_store(tmp_path / "proj")
    with store:
        store.conn.execute("UPDATE runs SET model_spec = 'openai:$x^{$@http://h/v1'")
        data = collect(store)
    blocks = figs.report_figures(data)
    try:
        for b in blocks:
            assert_png(figs.png_bytes(b))
    finally:
        figs.close(blocks)


def test_bad_figure_name():
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError, match="figure name"):
        figs.FigureBlock("../etc/passwd", fig)
    plt.close(fig)
