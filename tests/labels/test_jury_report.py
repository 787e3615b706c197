"""Juries read from a real store (labels/jury_report.py): the fixture runs with a second rubric judge and a
classifier written as the pipeline writes them; unscored verdicts counted, the classifier kept out of alpha,
people's labels not seated, the console block within 80 columns, the report section and `compare`."""

from __future__ import annotations

import pytest
from rich.console import Console

from helpers.cli import run_main
from helpers.fixtures_report import JUDGE, SCORES_A, build_store
from medsafetybench.judging.base import JudgeCase, Judgement
from medsafetybench.labels.jury import krippendorff_alpha
from medsafetybench.labels.jury_report import compare_juries, jury_renderable, report_sections, run_jury
from medsafetybench.labels.sample import human_identity, put_labels

SECOND = "offline:fixture-second-v0"
GUARD = "llamaguard3:openai:fixture-guard|lg3-fixture|label"
# the second rubric judge agrees with model-a's judge except on item 4 (planted: 4 -> 1) and item 11 (scores it)
SECOND_A = [1, 1, 2, 5, 1, 1, 3, 1, 2, 5, 1, 2]
GUARD_A = [False, False, False, True, True, False, False, False, False, True, False, None]  # None: unreadable


def _judge(store, run_id, identity, verdicts, classifier=False):
    rows = store.run_rows(run_id)
    for r, v in zip(rows, verdicts, strict=True):
        if r.response is None:
            continue
        if classifier:
            j = (
                Judgement(None, raw="unsafe?? S99", label=None)
                if v is None
                else Judgement(
                    5 if v else 1,
                    raw="unsafe" if v else "safe",
                    value=1.0 if v else 0.0,
                    label="unsafe" if v else "safe",
                    harmful=v,
                )
            )
        else:
            j = Judgement(v, raw=f"#score: {v}" if v else "no score", reason="r")
        store.put_judgement(JudgeCase(r.request, r.response, r.policy).cache_key(identity), identity, j)
    store.add_run_judge(run_id, identity)


@pytest.fixture
def store(tmp_path):
    s, a, b = build_store(tmp_path / "proj")
    _judge(s, a, SECOND, SECOND_A)
    _judge(s, a, GUARD, GUARD_A, classifier=True)
    yield s, a, b
    s.close()


def test_run_jury_reads_every_machine_judge_and_counts_unscored(store):
    s, a, b = store
    put_labels(s, a, human_identity("alice"), {"test/01": 1}, via="test")  # a person is not a juror
    j = run_jury(s, a)
    assert j.judges == (JUDGE, SECOND, GUARD) and j.paper_scale == (True, True, False)
    assert j.n_unscored == (1, 0, 1) and j.n_scored == (11, 12, 11)  # unreadable verdicts are counted
    assert j.alpha == pytest.approx(krippendorff_alpha([SCORES_A, SECOND_A], "ordinal"))
    assert j.alpha_judges == (JUDGE, SECOND) and j.alpha_units == 11  # item 11: one rubric score only
    planted = next(v for v in j.items if v.item_id == "test/04")
    assert planted.disagree and planted.scores == (4, 1, 5) and planted.jury_harmful is True  # 2 of 3
    assert planted.mean_score == 2.5  # the classifier's mapped 5 is not averaged in
    last = next(v for v in j.items if v.item_id == "test/11")
    assert last.n_missing == 2 and last.mean_score == 2.0 and last.jury_harmful is False
    assert [v.item_id for v in j.disagreements] == ["test/04"]
    assert run_jury(s, b) is None  # one judge: no jury
    assert run_jury(s, a, judges=[JUDGE, GUARD]).alpha is None  # one rubric judge: no alpha


def test_console_block_fits_80_columns_and_the_report_has_a_section(store):
    s, a, b = store
    console = Console(width=80, record=True, color_system=None)
    console.print(jury_renderable(run_jury(s, a), 80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "label/probability: 11 scored, 1 unscored" in flat and "needs" not in flat
    assert "test/04" in text and "tie -> harmful" in text
    sections = report_sections(s, [s.run(a), s.run(b)])
    assert [x.key for x in sections] == ["jury"]
    tables = [blk for blk in sections[0].blocks if hasattr(blk, "rows")]
    assert len(tables[0].rows) == 1 and tables[0].rows[0][1] == 3  # one run with a jury, three judges
    assert [r[1] for r in tables[-1].rows] == ["test/04"]  # the disagreements, ids only
    assert report_sections(s, [s.run(b)]) == []


def test_compare_juries(store):
    s, a, b = store
    _judge(s, b, SECOND, [1, 2, 2, 3, 1, 1, 1, 1, 1, 2, 1, 1])
    c = compare_juries(s, a, b)
    assert c.a is not None and c.b is not None and not c.same_judges  # b has no classifier
    assert c.difference.n == 11  # model-b's item 11 has no response
    d = c.to_dict()
    assert d["difference"]["n"] == 11 and d["a"]["judges"][2] == GUARD


def test_label_needs_a_sample_or_the_disagreements(store, capsys):
    s, a, _ = store
    project = s.path.parent
    assert run_main("label", a, "--project", str(project)) == 2
    assert "give --sample N" in capsys.readouterr().err
