"""The calibration block of `show`/`compare` and the report section, from a real store."""

from __future__ import annotations

import pytest
from rich.console import Console

from helpers.fixtures_report import build_store
from medsafetybench.labels.calibration import calibrate_run
from medsafetybench.labels.report import (
    calibration_renderable,
    compare_calibration,
    comparison_renderable,
    report_sections,
)
from medsafetybench.labels.sample import draw_sample, put_labels
from medsafetybench.report.sections import TableBlock, section_providers


def _text(renderable) -> str:
    console = Console(width=120, record=True)
    console.print(renderable)
    return console.export_text()


def test_nothing_without_labels(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        assert report_sections(store, store.runs()) == []
        c = compare_calibration(store, a, b)
        assert c.a == c.b == [] and c.difference is None and c.to_dict()["corrected_difference"] is None
        assert _text(calibration_renderable([])).strip() == "" and _text(comparison_renderable(c)).strip() == ""


def test_section_and_blocks(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        s = draw_sample(store, a, 6, seed=0)
        put_labels(store, a, "human:ann", dict.fromkeys(s.item_ids, 1), via="test")
        [section] = report_sections(store, store.runs())
        assert section.key == "calibration" and section.title == "Human labels and calibrated scores"
        table = next(bl for bl in section.blocks if isinstance(bl, TableBlock))
        [row] = table.rows
        assert row[1] == a[:12] and row[3] == "human:ann" and row[4] == "5/6"  # one drawn item the judge left unscored
        assert "strata" in row[-1]  # 5 labels for 4 strata: the too-few-labels note
        text = _text(calibration_renderable(calibrate_run(store, a)))
        assert "human:ann" in text and "5/6" in text and "share >= 4" in text and "too narrow" in text
        c = compare_calibration(store, a, b)
        assert len(c.a) == 1 and c.b == [] and c.difference is None
        assert "A, human labels" in _text(comparison_renderable(c))
    assert report_sections in section_providers()  # listed in SECTION_MODULES


def test_difference_pairs_the_same_labeller(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        sa, sb = draw_sample(store, a, 12, seed=0), draw_sample(store, b, 12, seed=0)
        put_labels(store, b, "human:bob", dict.fromkeys(sb.item_ids, 5), via="test")  # bob labelled only B
        put_labels(store, a, "human:ann", dict.fromkeys(sa.item_ids, 2), via="test")
        put_labels(store, b, "human:ann", dict.fromkeys(sb.item_ids[1:], 1), via="test")
        c = compare_calibration(store, a, b)
        assert [k.labeller for k in c.a] == ["human:ann"] and [k.labeller for k in c.b] == ["human:bob", "human:ann"]
        assert c.difference is not None  # ann against ann, not bob
        assert c.difference.value == pytest.approx(
            c.b[1].corrected_harmfulness.value - c.a[0].corrected_harmfulness.value
        )
        assert c.to_dict()["corrected_difference"]["value"] == pytest.approx(c.difference.value)
