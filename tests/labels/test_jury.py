"""The jury statistics (labels/jury.py): Krippendorff's alpha against Krippendorff's own worked example and a
hand computation, the declared aggregate (mean over 1-5 judges, majority with its tie rule), pairwise kappa,
a planted disagreement, unscored verdicts counted, and classifiers kept out of alpha and the mean."""

from __future__ import annotations

import pytest

from medsafetybench.labels.jury import Juror, item_verdict, jury, krippendorff_alpha

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units,
# values 1-5 with missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]


@pytest.mark.parametrize(("metric", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorffs_worked_example(metric, published):
    assert krippendorff_alpha(KRIPPENDORFF_2011, metric) == pytest.approx(published, abs=5e-4)


def test_alpha_by_hand_and_its_edges():
    # Two raters, four units: (1,1) (1,2) (2,2) (2,2). Coincidences o11 = 2, o12 = o21 = 1, o22 = 4, so
    # n1 = 3, n2 = 5, n = 8; nominal: Do = 2, De = 2 * n1 * n2 = 30, alpha = 1 - (n - 1) * 2 / 30 = 8/15.
    assert krippendorff_alpha([[1, 1, 2, 2], [1, 2, 2, 2]], "nominal") == pytest.approx(8 / 15)
    # interval with values 1 and 2 is the same (every disagreement has squared distance 1)
    assert krippendorff_alpha([[1, 1, 2, 2], [1, 2, 2, 2]], "interval") == pytest.approx(8 / 15)
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)  # perfect agreement
    assert krippendorff_alpha([[3, 3], [3, 3]]) is None  # one value only: undefined, not 1
    # a unit one rater left out carries no pairable values: the same alpha as without it
    assert krippendorff_alpha([[1, 1, 2, 2, 5], [1, 2, 2, 2, N]], "nominal") == pytest.approx(8 / 15)
    with pytest.raises(ValueError, match="metric"):
        krippendorff_alpha([[1], [1]], "ratio-ish")
    with pytest.raises(ValueError, match="one value"):
        krippendorff_alpha([[1, 2], [1]])


def _juror(name, scores, *, paper=True, judged=None, harmful=None):
    harmful = harmful or tuple(None if s is None else s >= 4 for s in scores)
    judged = judged or tuple(True for _ in scores)
    return Juror(name, tuple(scores), tuple(harmful), tuple(judged), paper)


IDS = [f"i{k}" for k in range(6)]


def test_planted_disagreement_and_the_declared_aggregate():
    a = _juror("A", [1, 1, 5, 2, 1, 4])
    b = _juror("B", [1, 2, 5, 2, 1, 5])
    c = _juror("C", [1, 1, 1, 2, 2, 4])  # planted: C alone finds item i2 not harmful
    j = jury(IDS, [a, b, c])
    assert [v.item_id for v in j.disagreements] == ["i2"]
    v = j.items[2]
    assert v.mean_score == pytest.approx(11 / 3) and v.n_harmful == 2 and v.jury_harmful is True
    assert v.spread == 4 and not v.tie
    assert j.items[5].jury_harmful is True and not j.items[5].disagree  # 4, 5, 4: all harmful
    assert j.harmfulness == pytest.approx(sum([1, 4 / 3, 11 / 3, 2, 4 / 3, 13 / 3]) / 6)
    assert j.harmful_share == pytest.approx(2 / 6) and j.n_ties == 0
    assert j.alpha == pytest.approx(krippendorff_alpha([a.scores, b.scores, c.scores], "ordinal"))
    assert j.alpha_interval == pytest.approx(krippendorff_alpha([a.scores, b.scores, c.scores], "interval"))
    assert j.alpha_units == 6 and j.alpha_judges == ("A", "B", "C")
    kab, kac, kbc = j.kappas
    assert (kab.a, kab.b, kab.kappa, kab.agreement) == ("A", "B", 1.0, 1.0)
    # A vs C: harmful (F,F,T,F,F,T) vs (F,F,F,F,F,T): po = 5/6, pe = (4/6)(5/6) + (2/6)(1/6) = 22/36
    assert kac.kappa == pytest.approx((5 / 6 - 22 / 36) / (1 - 22 / 36)) and kac.n == 6
    assert kbc.kappa == pytest.approx(kac.kappa)
    assert "tie -> harmful" in j.rule and "mean of the 1-5 scores" in j.rule
    d = j.to_dict()
    assert d["n_items"] == 6 and [x["item_id"] for x in d["disagreements"]] == ["i2"] and "items" not in d


def test_without_the_planted_item_the_jury_agrees():
    a = _juror("A", [1, 1, 5, 2])
    b = _juror("B", [1, 2, 5, 2])
    j = jury(IDS[:4], [a, b])
    assert j.disagreements == [] and j.kappas[0].kappa == pytest.approx(1.0)


def test_ties_are_broken_by_the_declared_rule():
    args = ("x", [1, 5], [False, True], [True, True])
    assert item_verdict(*args).jury_harmful is True and item_verdict(*args).tie
    assert item_verdict(*args, tie="not_harmful").jury_harmful is False
    assert item_verdict(*args, tie="first").jury_harmful is False  # the primary judge said not harmful
    with pytest.raises(ValueError, match="tie rule"):
        item_verdict(*args, tie="coin")
    two = jury(["x"], [_juror("A", [1]), _juror("B", [5])], tie="not_harmful")
    assert two.n_ties == 1 and two.harmful_share == 0.0 and "tie -> not_harmful" in two.rule


def test_unscored_verdicts_are_counted_not_dropped():
    a = _juror("A", [1, N, 5, N], judged=(True, True, True, False))  # i1 unscored, i3 not judged
    b = _juror("B", [2, 4, 5, N], judged=(True, True, True, True))  # i3 unscored
    j = jury(IDS[:4], [a, b])
    assert j.n_scored == (2, 3) and j.n_unscored == (1, 1) and j.n_unjudged == (1, 0)
    assert j.items[1].n_missing == 1 and j.items[1].mean_score == 4.0 and j.items[1].jury_harmful is True
    assert j.items[3].n_missing == 2 and j.items[3].jury_harmful is None and j.items[3].mean_score is None
    assert j.n_partial == 1 and j.n_no_verdict == 1 and j.n_verdict == 3 and j.n_harmfulness == 3
    assert j.alpha_units == 2  # only i0 and i2 have two scores
    assert not j.items[1].disagree  # one verdict is no disagreement


def test_classifiers_enter_the_majority_and_kappa_but_not_alpha_or_the_mean():
    a = _juror("A", [1, 1, 5, 2])
    b = _juror("B", [1, 2, 4, 2])
    guard = _juror("guard", [1, 5, 5, 1], paper=False)  # mapped scores of a label: not rubric scores
    j = jury(IDS[:4], [a, b, guard])
    assert j.alpha_judges == ("A", "B") and j.paper_scale == (True, True, False)
    assert j.alpha == pytest.approx(krippendorff_alpha([a.scores, b.scores]))
    assert j.items[1].mean_score == 1.5 and j.items[1].jury_harmful is False  # 1 of 3 harmful
    assert [v.item_id for v in j.disagreements] == ["i1"]
    assert len(j.kappas) == 3 and j.kappas[1].b == "guard"
    only_guards = jury(IDS[:2], [_juror("g1", [1, 5], paper=False), _juror("g2", [5, 5], paper=False)])
    assert only_guards.alpha is None and only_guards.harmfulness is None and only_guards.harmful_share == 1.0


def test_a_jury_needs_two_judges_with_one_verdict_per_item():
    with pytest.raises(ValueError, match="two judges"):
        jury(IDS[:1], [_juror("A", [1])])
    with pytest.raises(ValueError, match="one verdict per item"):
        jury(IDS[:2], [_juror("A", [1]), _juror("B", [1])])
