"""Agreement statistics on a small hand-made labelled set; every expected number is worked out by hand
in the comments."""

import pytest

from medsafetybench.labels.agreement import (
    binary_agreement,
    cohen_kappa,
    judge_pair_agreement,
    label_agreement,
    score_confusion,
    threshold_sweep,
)

# 8 labelled responses; the 6th is unscored and is left out: 7 pairs remain
# (1,F) (2,F) (5,T) (4,T) (3,T) (5,F) (1,F)
SCORES = [1, 2, 5, 4, 3, None, 5, 1]
LABELS = [False, False, True, True, True, True, False, False]


def test_at_threshold_4():
    a = label_agreement(SCORES, LABELS, threshold=4)
    assert (a.n, a.n_unscored, a.threshold) == (8, 1, 4)
    h = a.at_threshold
    # judge harmful = score >= 4: (5,T) (4,T) are tp, (5,F) fp, (3,T) fn, three tn
    assert (h.tp, h.fp, h.fn, h.tn, h.n) == (2, 1, 1, 3, 7)
    assert h.confusion == [[3, 1], [1, 2]]
    assert h.accuracy == pytest.approx(5 / 7)
    assert h.precision == pytest.approx(2 / 3) and h.recall == pytest.approx(2 / 3)
    assert h.f1 == pytest.approx(2 / 3)
    # po = 5/7; both raters say harmful 3/7 of the time: pe = (3/7)^2 + (4/7)^2 = 25/49
    # kappa = (35/49 - 25/49) / (24/49) = 10/24
    assert h.kappa == pytest.approx(5 / 12)
    assert a.score_counts == {"harmful": {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}, "not_harmful": {1: 2, 2: 1, 3: 0, 4: 0, 5: 1}}


def test_threshold_sweep_moves_as_computed_by_hand():
    sweep = {p.threshold: p.agreement for p in threshold_sweep(SCORES, LABELS)}
    assert list(sweep) == [1, 2, 3, 4, 5]
    # t=1: everything harmful: tp 3, fp 4; accuracy = precision = 3/7, recall 1, kappa 0 (po = pe = 3/7)
    t1 = sweep[1]
    assert (t1.tp, t1.fp, t1.fn, t1.tn) == (3, 4, 0, 0)
    assert t1.accuracy == pytest.approx(3 / 7) and t1.recall == 1.0 and t1.kappa == pytest.approx(0.0)
    # t=2: only the two 1s are not harmful: tp 3, fp 2, tn 2
    assert (sweep[2].tp, sweep[2].fp, sweep[2].fn, sweep[2].tn) == (3, 2, 0, 2)
    # t=3: tp 3, fp 1, tn 3; po = 6/7, pe = (4/7)(3/7) + (3/7)(4/7) = 24/49 -> kappa = 18/25
    t3 = sweep[3]
    assert (t3.tp, t3.fp, t3.fn, t3.tn) == (3, 1, 0, 3)
    assert t3.precision == pytest.approx(3 / 4) and t3.kappa == pytest.approx(18 / 25)
    # t=5: only the two 5s: tp 1, fp 1, fn 2, tn 3
    t5 = sweep[5]
    assert (t5.tp, t5.fp, t5.fn, t5.tn) == (1, 1, 2, 3)
    assert t5.precision == pytest.approx(1 / 2) and t5.recall == pytest.approx(1 / 3)
    assert t5.accuracy == pytest.approx(4 / 7)
    # recall never rises as the threshold rises
    recalls = [sweep[t].recall for t in range(1, 6)]
    assert recalls == sorted(recalls, reverse=True)


def test_two_judges():
    a = [1, 2, 5, 4, 3, None, 5, 1]
    b = [1, 3, 5, 5, 3, 2, None, 1]
    p = judge_pair_agreement(a, b, threshold=4)
    # both scored: (1,1) (2,3) (5,5) (4,5) (3,3) (1,1)
    assert (p.n, p.n_both_scored, p.n_unscored_a, p.n_unscored_b) == (8, 6, 1, 1)
    assert p.exact == pytest.approx(4 / 6) and p.within_one == 1.0
    assert p.confusion == [[2, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1]]
    # A's marginals (1..5) 2,1,1,1,1; B's 2,0,2,0,2: pe = (4 + 2 + 2)/36 = 8/36, po = 24/36 -> 16/28
    assert p.kappa == pytest.approx(4 / 7)
    # quadratic weights ((i-j)/4)^2: observed 2 * 1/16 / 6 = 1/48; expected 180/16/36 = 5/16
    # -> 1 - (1/48)/(5/16) = 14/15
    assert p.weighted_kappa == pytest.approx(14 / 15)
    # harmful calls (>= 4) agree on all six
    assert p.binary.kappa == pytest.approx(1.0) and (p.binary.tp, p.binary.tn) == (2, 4)
    assert p.to_dict()["binary"]["confusion"] == [[4, 0], [0, 2]]


def test_edge_cases():
    assert cohen_kappa([], []) is None
    assert cohen_kappa([1, 1], [1, 1]) is None  # chance agreement is 1: undefined
    assert cohen_kappa([0, 1], [1, 0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 2])
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1, 2], weights="cubic")
    empty = binary_agreement([], [])
    assert empty.accuracy is None and empty.precision is None and empty.kappa is None
    none_predicted = binary_agreement([False, False], [True, False])
    assert none_predicted.precision is None and none_predicted.recall == 0.0 and none_predicted.f1 is None
    with pytest.raises(ValueError, match="threshold"):
        label_agreement([1], [True], threshold=6)
    assert score_confusion([5], [1])[4][0] == 1
    allunscored = label_agreement([None, None], [True, False])
    assert allunscored.n_unscored == 2 and allunscored.at_threshold.n == 0
