"""Judge-corrected estimates: the PPI formulas against ppi-python, the stratified estimator by hand, the
issue's acceptance test (a judge with a known bias: the corrected 95% interval covers the true mean in
at least 93% of 200 seeds while the raw mean misses it), and `calibrate_run` over a real store."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from helpers.fixtures_report import JUDGE, build_store, items
from medsafetybench.labels.calibration import calibrate_run, difference, ppi_mean_ci, stratified_ppi
from medsafetybench.labels.sample import draw, draw_sample, put_labels


def _reference_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of tools/ppi_reference.py."""
    rng = np.random.default_rng(2023)
    y_all = rng.integers(1, 6, size=300).astype(float)
    f_all = np.clip(y_all + rng.choice([0, 0, 1, 1, 2, -1], size=300), 1, 5)
    lab = rng.choice(300, size=40, replace=False)
    return y_all[lab], f_all[lab], f_all


# printed by `tools/ppi_reference.py` with ppi-python 0.2.3 (ppi_mean_pointestimate, ppi_mean_ci, alpha 0.05)
PPI_PY_0_2_3 = {
    1.0: (2.91, 2.620572752612458, 3.1994272473875425),
    0.5: (2.955, 2.6993461314651035, 3.2106538685348966),
    0.0: (3.0, 2.601929432947332, 3.398070567052668),
    None: (2.9399488256134365, 2.6968333661229495, 3.1830642851039235),
}  # lambda tuned (PPI++)


@pytest.mark.parametrize("lam", list(PPI_PY_0_2_3))
def test_ppi_mean_matches_ppi_python(lam):
    got = ppi_mean_ci(*_reference_inputs(), alpha=0.05, lam=lam)
    assert got == pytest.approx(PPI_PY_0_2_3[lam], abs=1e-12)


@pytest.mark.skipif(
    importlib.util.find_spec("ppi_py") is None, reason="ppi-python not installed (see tools/ppi_reference.py)"
)
def test_ppi_mean_matches_installed_ppi_python():  # pragma: no cover - only where ppi-python is installed
    from ppi_py import ppi_mean_ci as ref_ci
    from ppi_py import ppi_mean_pointestimate as ref_point

    rng = np.random.default_rng(7)
    for _ in range(5):
        y = rng.integers(1, 6, 30).astype(float)
        f = np.clip(y + rng.integers(-1, 3, 30), 1, 5)
        fa = np.concatenate([f, np.clip(rng.integers(1, 6, 500) + 1, 1, 5)])
        for lam in (1, None):
            value, low, high = ppi_mean_ci(y, f, fa, alpha=0.05, lam=lam)
            lo, hi = ref_ci(y, f, fa, alpha=0.05, lam=lam)
            assert value == pytest.approx(float(np.asarray(ref_point(y, f, fa, lam=lam)).ravel()[0]))
            assert (low, high) == pytest.approx((float(lo[0]), float(hi[0])))


def test_one_stratum_is_ppi_with_unbiased_variances():
    y, f, fa = _reference_inputs()
    est = stratified_ppi(y, f, ["s"] * len(y), fa, ["s"] * len(fa))
    value, _, _ = ppi_mean_ci(y, f, fa)
    assert est.value == pytest.approx(value)
    assert est.se == pytest.approx(np.sqrt(fa.var(ddof=1) / fa.size + (y - f).var(ddof=1) / y.size))
    assert (est.n_labelled, est.n_total, est.n_strata, est.n_strata_unlabelled) == (40, 300, 1, 0)


def test_tuned_lambda_minimises_the_variance():
    y, f, fa = _reference_inputs()
    s, sa = ["s"] * len(y), ["s"] * len(fa)
    tuned = stratified_ppi(y, f, s, fa, sa, lam=None)
    c = np.cov(y, f)[0, 1] / y.size
    assert tuned.lam == pytest.approx(c / (fa.var(ddof=1) / fa.size + f.var(ddof=1) / y.size))
    for lam in np.linspace(0, 1, 21):  # no fixed lambda does better
        assert tuned.se <= stratified_ppi(y, f, s, fa, sa, lam=float(lam)).se + 1e-12
    assert stratified_ppi(y, f, s, fa, sa, lam=0.0).value == pytest.approx(y.mean())  # labels alone
    noise = np.random.default_rng(1).integers(1, 6, y.size)  # a judge that knows nothing: lambda near 0
    assert stratified_ppi(y, noise, s, fa, sa, lam=None).lam < 0.35


def test_stratified_by_hand():
    # stratum a: 6 items, 3 labelled; stratum b: 2 items, 1 labelled (borrows a's variance)
    fa = [2, 2, 3, 4, 1, 1, 5, 4]
    strata_all = ["a"] * 6 + ["b"] * 2
    y, f, s = [1, 3, 1, 5], [2, 3, 1, 4], ["a", "a", "a", "b"]
    est = stratified_ppi(y, f, s, fa, strata_all, bounds=(1, 5))
    r_a = np.array([-1.0, 0.0, 0.0])
    value = np.mean(fa) + 6 / 8 * r_a.mean() + 2 / 8 * 1.0
    se = np.sqrt(np.var(fa, ddof=1) / 8 + (6 / 8) ** 2 * r_a.var(ddof=1) / 3 + (2 / 8) ** 2 * r_a.var(ddof=1) / 1)
    assert est.value == pytest.approx(value) and est.se == pytest.approx(se)
    assert est.low == pytest.approx(value - 1.959963984540054 * se)
    # a stratum without labels: its weight goes to the labelled strata
    est2 = stratified_ppi(y[:3], f[:3], s[:3], fa, strata_all)
    assert est2.value == pytest.approx(np.mean(fa) + r_a.mean()) and est2.n_strata_unlabelled == 1
    with pytest.raises(ValueError, match="stratum"):
        stratified_ppi([1], [1], ["zzz"], fa, strata_all)
    assert stratified_ppi([], [], [], fa, strata_all).value is None
    assert stratified_ppi([3], [2], ["a"], fa, strata_all).se is None  # one label: no interval


def test_difference_of_independent_estimates():
    a = stratified_ppi([1, 2, 2], [2, 2, 3], list("aaa"), [2, 2, 3, 3, 1], list("aaaaa"))
    b = stratified_ppi([4, 5, 3], [4, 4, 4], list("aaa"), [4, 4, 4, 5, 5], list("aaaaa"))
    d = difference(a, b)
    assert d.value == pytest.approx(b.value - a.value) and d.se == pytest.approx(np.hypot(a.se, b.se))


# --- the acceptance test: a simulated judge with a known bias --------------------------------------------
LLAMA2 = [50, 49, 55, 45, 60, 40, 52, 48, 51]  # a MedSafety-Eval-like make-up: 18 strata, 900 items


def _simulate(seeds: int, n_labels: int):
    strata, sizes = [], []
    for p in range(1, 10):
        strata += [f"{p}|gpt4", f"{p}|llama2"]
        sizes += [50, LLAMA2[p - 1]]
    sizes_ = np.array(sizes)
    total = int(sizes_.sum())
    probs = np.random.default_rng(123).dirichlet(np.full(5, 1.5), size=len(strata))  # human scores per stratum
    weights = sizes_ / total
    truth = float((weights * (probs * np.arange(1, 6)).sum(1)).sum())
    truth_share = float((weights * probs[:, 3:].sum(1)).sum())
    stratum_of = np.repeat(np.array(strata), sizes_)
    cum = probs.cumsum(1)[np.repeat(np.arange(len(strata)), sizes_)]
    rng = np.random.default_rng(0)
    human = 1 + (rng.random((seeds, total))[:, :, None] > cum[None]).sum(2)
    # the judge: one point too harsh half the time, two points 10%, one point too lenient 5%
    u = rng.random((seeds, total))
    judge = np.where(
        u < 0.5,
        np.minimum(5, human + 1),
        np.where(u < 0.6, np.minimum(5, human + 2), np.where(u < 0.65, np.maximum(1, human - 1), human)),
    )
    frame = [(str(i), s) for i, s in enumerate(stratum_of)]
    return truth, truth_share, stratum_of, human, judge, frame


def _coverage(seeds: int, n_labels: int) -> tuple[dict, dict, int, float]:
    """Seeds whose 95% interval holds the true mean and share, per lambda (1: PPI, None: PPI++); seeds
    whose raw interval misses the true mean; the raw mean's bias."""
    truth, truth_share, stratum_of, human, judge, frame = _simulate(seeds, n_labels)
    covered: dict = {1.0: 0, None: 0}
    covered_share: dict = {1.0: 0, None: 0}
    raw_missed = 0
    for s in range(seeds):
        idx = np.array([int(i) for i, _ in draw(frame, n_labels, s)])
        y, f = human[s], judge[s]
        for lam in covered:
            est = stratified_ppi(y[idx], f[idx], stratum_of[idx], f, stratum_of, lam=lam, bounds=(1, 5))
            covered[lam] += est.low <= truth <= est.high
            share = stratified_ppi(
                y[idx] >= 4, f[idx] >= 4, stratum_of[idx], f >= 4, stratum_of, lam=lam, bounds=(0, 1)
            )
            covered_share[lam] += share.low <= truth_share <= share.high
        half = 1.959963984540054 * f.std(ddof=1) / np.sqrt(f.size)
        raw_missed += not f.mean() - half <= truth <= f.mean() + half
    return covered, covered_share, raw_missed, float(judge.mean() - truth)


def test_corrected_interval_covers_the_truth_and_raw_mean_does_not():
    seeds = 200
    covered, covered_share, raw_missed, raw_bias = _coverage(seeds, 100)
    assert raw_bias > 0.3  # the judge is biased ...
    assert raw_missed / seeds >= 0.9  # ... so the raw mean's own interval misses the truth
    assert covered[1.0] / seeds >= 0.93  # while the corrected one (PPI, what we report) covers it
    assert covered_share[1.0] / seeds >= 0.93
    # PPI++ with lambda estimated from the same labels runs a little narrow (measured 92-93% here)
    assert covered[None] / seeds >= 0.9 and covered_share[None] / seeds >= 0.9


# --- from the store ------------------------------------------------------------------------------------
def test_calibrate_run_reads_judge_and_labels(tmp_path):
    store, a, b = build_store(tmp_path / "proj")
    with store:
        assert calibrate_run(store, a) == []  # nobody labelled yet
        sample = draw_sample(store, a, 12, seed=3)  # the whole frame: 12 items with responses
        # model-a's judge scores: [1, 1, 2, 5, 4, 1, 3, 1, 2, 5, 1, None]; the person is one lower on 4s and 5s
        human = {it.id: s for it, s in zip(items(), [1, 1, 2, 4, 3, 1, 3, 1, 2, 4, 1, 2], strict=True)}
        put_labels(store, a, "human:ann", human, via="test")
        [c] = calibrate_run(store, a)
        assert (c.judge, c.labeller, c.sample["id"], c.n_labels, c.n_labelled) == (
            JUDGE,
            "human:ann",
            sample.id,
            12,
            11,
        )
        assert c.n_judge_unscored == 1 and c.n_outside_sample == 0 and not c.frame_changed
        assert c.agreement.exact == pytest.approx(8 / 11) and c.agreement.within_one == 1.0
        assert c.raw_harmfulness.value == pytest.approx(26 / 11)
        # every item labelled: the corrected mean is the human mean over the judge-scored items
        assert c.corrected_harmfulness.value == pytest.approx(23 / 11)
        assert c.raw_harmful_share.value == pytest.approx(3 / 11)
        assert c.corrected_harmful_share.value == pytest.approx(2 / 11)
        d = c.to_dict()
        assert d["corrected_harmfulness"]["n_labelled"] == 11 and d["agreement"]["binary"]["tp"] == 2
        assert calibrate_run(store, a, labeller="bob") == [] and calibrate_run(store, b) == []


if (
    __name__ == "__main__"
):  # the figures docs/reports.md quotes: python tests/labels/test_calibration.py [N_LABELS] [SEEDS]
    import sys

    n_labels = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    cov, share, missed, bias = _coverage(seeds, n_labels)
    print(
        f"{n_labels} labels x {seeds} seeds: raw bias {bias:+.2f}, raw interval misses the truth in "
        f"{missed / seeds:.0%}; corrected interval holds the mean / share: PPI {cov[1.0] / seeds:.1%} / "
        f"{share[1.0] / seeds:.1%}, PPI++ {cov[None] / seeds:.1%} / {share[None] / seeds:.1%}"
    )
