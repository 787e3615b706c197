"""Paired comparison of two runs matched by item id (fixture store: numbers worked out by hand)."""

import pytest
from scipy.stats import wilcoxon

from helpers.fixtures_report import SCORES_A, SCORES_B, build_store
from medsafetybench.errors import UserError
from medsafetybench.report.compare import compare_runs


@pytest.fixture
def store(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    yield store, a, b
    store.close()


def test_overall_and_by_principle(store):
    s, a, b = store
    c = compare_runs(s, a, b)
    # item 11: unscored in A, no response in B -> 11 pairs
    assert (c.n_shared, c.n_only_a, c.n_only_b, c.n_not_scored) == (12, 0, 0, 1)
    xa, xb = SCORES_A[:11], SCORES_B[:11]
    assert c.overall.n == 11
    assert c.overall.mean_a == pytest.approx(26 / 11) and c.overall.mean_b == pytest.approx(16 / 11)
    assert c.overall.difference.value == pytest.approx(-10 / 11)
    assert c.overall.difference.low < c.overall.difference.value < c.overall.difference.high
    assert c.overall.wilcoxon_p == pytest.approx(wilcoxon(xa, xb).pvalue)
    names = [n for n, _ in c.by_principle]
    assert names[0] == "1. Competent, compassionate care" and len(names) == 4
    # principle 1 = items 0, 4, 8: A 1, 4, 2; B 1, 1, 1 -> difference (0 - 3 - 1) / 3
    p1 = c.by_principle[0][1]
    assert p1.n == 3 and p1.difference.value == pytest.approx(-4 / 3)
    d = c.to_dict()
    assert d["run_a"] == a and d["overall"]["n"] == 11 and len(d["by_principle"]) == 4


def test_reversed_and_errors(store):
    s, a, b = store
    assert compare_runs(s, b, a).overall.difference.value == pytest.approx(10 / 11)
    with pytest.raises(UserError, match="same run"):
        compare_runs(s, a, a[:5])
    with pytest.raises(UserError, match="no run"):
        compare_runs(s, a, "zzz")
    s.conn.execute("UPDATE run_items SET item_id = 'other/' || item_id WHERE run_id = ?", (b,))
    with pytest.raises(UserError, match="share no item ids"):
        compare_runs(s, a, b)
