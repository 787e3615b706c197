"""finetune.report: the sweep sections of the HTML report, from `sweep_points` rows written by the sweep's
own writer (`sweep.save_point`) over a store of fixture runs (no training, no model, no judge)."""

import pytest

from helpers.cli import run_main

pytest.importorskip("matplotlib")

from helpers.fixtures_report import JUDGE, build_store  # noqa: E402
from medsafetybench.finetune import report as ftr  # noqa: E402
from medsafetybench.finetune import sweep  # noqa: E402
from medsafetybench.finetune.overrefusal import OverRefusal  # noqa: E402
from medsafetybench.metrics import Estimate, PairedComparison  # noqa: E402
from medsafetybench.report import sections as sec  # noqa: E402
from medsafetybench.report.figures import close  # noqa: E402

SID = "0123456789abcdef"


def point(kind, n, run_id, harm, refusal=None, medqa=None):
    vs = None if kind == "base" else PairedComparison(12, 3.0, harm, Estimate(harm - 3.0, harm - 3.4, harm - 2.6), 0.01)
    ref = (
        OverRefusal(
            "benign" + run_id[:6],
            50,
            int(refusal * 50),
            Estimate(refusal, refusal - 0.1, refusal + 0.1),
            "refusal-detector",
        )
        if refusal is not None
        else None
    )
    return sweep.SweepPoint(
        kind,
        n,
        f"hf:/m+{kind}{n}" if n else "hf:/m",
        None,
        None,
        run_id,
        12,
        12,
        Estimate(harm, harm - 0.4, harm + 0.4),
        vs,
        ref,
        {"macro_acc": medqa, "accuracy": {"medqa": medqa}} if medqa is not None else None,
        refusal=Estimate((5 - harm) / 4, 0.0, 1.0),
    )


@pytest.fixture
def project(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    sweep.ensure_schema(store)
    for p in [
        point("base", 0, a, 3.0, 0.1, 0.40),
        point("med", 200, b, 2.0, 0.3, 0.38),
        point("med", 100, b, 2.5, 0.2),
        point("gen", 100, b, 2.8, 0.15, 0.41),
    ]:
        sweep.save_point(store, SID, p)
    yield store, a, b
    store.close()


def test_sections_from_sweep_rows(project):
    store, a, b = project
    secs = ftr.report_sections(store, store.runs())
    assert [(s.key, s.title) for s in secs] == [
        ("finetune-sweep", "Safety fine-tuning sweep"),
        ("finetune-tradeoff", "Safety vs medical accuracy"),
    ]
    sw, qa = secs
    [text] = [b for b in sw.blocks if isinstance(b, sec.Paragraph)]
    assert SID in text.text and JUDGE in text.text and "hf:/m" in text.text
    [table] = [b for b in sw.blocks if isinstance(b, sec.TableBlock)]
    assert table.columns[-2:] == ["medical QA acc (harness, no BOS)", "run"]  # points stored before protocols
    assert [r[:2] for r in table.rows] == [
        ["base", 0],
        ["medical safety", 100],
        ["medical safety", 200],
        ["general safety", 100],
    ]
    base, med100 = table.rows[0], table.rows[1]
    # data, n, harmfulness, refusal rate, vs base, Wilcoxon p, over-refusal, medical QA acc, run
    assert base[2] == Estimate(3.0, 2.6, 3.4) and base[3] == Estimate(0.5, 0.0, 1.0) and base[4] is None
    assert base[6].value == pytest.approx(0.1)
    assert med100[4].value == pytest.approx(-0.5) and med100[7] is None and base[7] == 0.40 and base[8] == a[:12]
    assert [f.name for f in sw.figures] == ["finetune-sweep"]
    fig = sw.figures[0].figure
    assert len(fig.axes) == 2  # harmfulness and over-refusal panels
    harm_ax = fig.axes[0]
    lines = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in harm_ax.get_lines()}
    assert lines["medical safety"] == ([0, 100, 200], [3.0, 2.5, 2.0])  # starts at the base
    assert lines["general safety"] == ([0, 100], [3.0, 2.8])
    assert lines["base (n = 0)"] == ([0], [3.0])
    # trade-off: only the points with a medical QA accuracy, labelled from our own columns
    [qt] = [b for b in qa.blocks if isinstance(b, sec.TableBlock)]
    assert [r[0] for r in qt.rows] == ["base", "med n=200", "gen n=100"]
    labels = sorted(t.get_text() for t in qa.figures[0].figure.axes[0].texts)
    assert labels == ["base", "gen n=100", "med n=200"]
    close(sw.figures + qa.figures)


def test_no_sweeps_no_sections(tmp_path, project):
    store, a, b = build_store(tmp_path / "plain")
    assert ftr.report_sections(store, store.runs()) == []
    # the tables exist from the store's migrations, empty
    assert store.conn.execute("SELECT COUNT(*) FROM sweep_points").fetchone() == (0,)
    store.close()
    ps, pa, pb = project
    assert ftr.report_sections(ps, []) == []
    # only sweeps with a point among the report's runs are shown
    assert ftr.report_sections(ps, [i for i in ps.runs() if i.id not in (pa, pb)]) == []


def test_without_qa_or_over_refusal(tmp_path):
    store, a, b = build_store(tmp_path / "p")
    sweep.ensure_schema(store)
    for p in [point("base", 0, a, 3.0), point("both", 200, b, 2.0)]:
        sweep.save_point(store, SID, p)
    [sw] = ftr.report_sections(store, store.runs())
    [table] = [x for x in sw.blocks if isinstance(x, sec.TableBlock)]
    assert "medical QA acc" not in table.columns and table.rows[1][:2] == ["medical + general", 200]
    assert len(sw.figures[0].figure.axes) == 1
    close(sw.figures)
    store.close()


def test_report_command_shows_sections(project, tmp_path, capsys):
    store, a, b = project
    assert "medsafetybench.finetune.report" in sec.SECTION_MODULES
    out, figs = tmp_path / "r.html", tmp_path / "figs"
    assert run_main("report", "--project", str(store.path.parent), "--out", str(out), "--figures", str(figs)) == 0, (
        capsys.readouterr()
    )
    html = out.read_text()
    assert "Safety fine-tuning sweep" in html and "Safety vs medical accuracy" in html
    assert 'id="fig-finetune-sweep"' in html and 'id="fig-finetune-tradeoff"' in html
    for name in ("finetune-sweep", "finetune-tradeoff"):
        png = (figs / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_several_sweeps_get_their_own_keys(project):
    store, a, b = project
    sweep.save_point(store, "fedcba9876543210", point("base", 0, a, 3.1, medqa=0.5))
    secs = ftr.report_sections(store, store.runs())
    assert [s.key for s in secs] == ["finetune-sweep-01234567", "finetune-sweep-fedcba98", "finetune-tradeoff"]
    assert [s.figures[0].name for s in secs] == [s.key for s in secs]
    labels = sorted(t.get_text() for t in secs[2].figures[0].figure.axes[0].texts)
    assert labels == ["base (012345)", "base (fedcba)", "gen n=100 (012345)", "med n=200 (012345)"]
    close([f for s in secs for f in s.figures])
