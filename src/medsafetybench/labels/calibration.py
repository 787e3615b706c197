"""Judge-corrected (calibrated) harmfulness from a sample of human labels: prediction-powered inference.

A judge scores every item of a run; a person labels a random sample of them. Prediction-powered
inference (PPI; Angelopoulos et al., Science 2023) estimates the mean the *person* would give over all
items as the judge's mean over all items plus the mean of (human - judge) over the labelled sample: the
judge supplies the precision, the labels remove its bias. Its variance is Var(judge)/N + Var(human -
judge)/n (the ppi-python `ppi_mean_ci` with `lam=1`; `ppi_mean_ci` here matches it, and
tests/labels/test_calibration.py checks that against values from ppi-python 0.2.3).

Our samples are stratified by (principle, source) (`labels.sample`), so the reported estimate is the
**stratum-weighted** PPI with lambda = 1 (classic PPI; `stratified_ppi(lam=None)` tunes lambda as PPI++
does, but with lambda estimated from the same labels its intervals ran narrow in our simulation, see
docs/reports.md, so `calibrate` does not use it):

    theta = mean_all(f) + sum_h W_h * mean_{labelled in h}(y - f),   W_h = N_h / N
    Var   = var(f) / N + sum_h W_h^2 * s_h^2 / n_h

with s_h^2 the sample variance (ddof 1) of (y - f) in stratum h; a stratum with a single label borrows
the pooled within-stratum variance (or, when no stratum has two, the variance over all labels). When
some strata have no label (labelling stopped early, or fewer labels than strata), the weights W_h are
renormalised over the labelled strata, which assumes the judge errs in the unlabelled strata as it does
elsewhere; the estimate says how many strata that was. Intervals are normal (z) intervals, clipped to
the scale. The population is the run's items that have a judge score (the raw mean's population);
labels of items the judge left unscored are left out.

Agreement on the sample is the plain (unweighted) share of exact and within-one scores, Cohen's kappa
of the harmful calls (score >= 4) and the quadratic-weighted kappa over 1-5 (`judging.agreement`).

Pure functions first, then `calibrate_run`, the one function that reads a run's judge and human labels
from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from ..judging.base import PAPER_HARMFUL_SCORE
from ..metrics import Estimate, bootstrap_mean
from ..store import Store
from .agreement import JudgePairAgreement, judge_pair_agreement
from .sample import human_identity, is_human, run_labels, sample_for, stratum_key


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


@dataclass(frozen=True)
class PPIEstimate:
    """A prediction-powered estimate of a mean with its normal interval."""

    value: float | None
    low: float | None
    high: float | None
    se: float | None
    n_labelled: int
    n_total: int
    """Items with a judge score (the population the estimate is about)."""
    n_strata: int = 1
    n_strata_unlabelled: int = 0
    """Strata of the population without a label (their weight went to the labelled strata)."""
    lam: float | None = None
    """How much of the judge the estimate uses (1: PPI; 0: the labels alone)."""

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.low, self.high)

    def fmt(self, digits: int = 2) -> str:
        return self.estimate.fmt(digits)

    def to_dict(self) -> dict:
        return asdict(self)


_EMPTY = PPIEstimate(None, None, None, None, 0, 0)


def _interval(
    value: float, se: float | None, level: float, bounds: tuple[float, float] | None
) -> tuple[float | None, float | None]:
    if se is None:
        return None, None
    low, high = value - _z(level) * se, value + _z(level) * se
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return low, high


def ppi_mean_ci(
    y: Sequence[float],
    yhat: Sequence[float],
    yhat_unlabelled: Sequence[float],
    *,
    alpha: float = 0.05,
    lam: float | None = 1.0,
) -> tuple[float, float, float]:
    """Unstratified PPI of a mean, as ppi-python's `ppi_mean_pointestimate` / `ppi_mean_ci` with a given
    `lam` (1: PPI, 0: labels only): (estimate, low, high). Standard deviations with ddof 0, as there.

    Args:
        y: human labels of the labelled items.
        yhat: the judge's scores of the same items.
        yhat_unlabelled: the judge's scores of the items the estimate is about (ppi-python's "unlabeled").
        alpha: 1 - confidence level.
        lam: the power-tuning parameter (1: PPI, 0: labels only, None: tuned as ppi-python tunes it).
    """
    y_, f_, fu = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_unlabelled))
    if lam is None:  # ppi-python's tuned lambda for a mean (its `_calc_lam_glm`, clipped)
        cov = float(((y_ - y_.mean()) * (f_ - f_.mean())).mean())
        var = float(np.concatenate([f_, fu]).var(ddof=1))
        lam = float(np.clip(cov / ((1 + y_.size / fu.size) * var), 0.0, 1.0))
    value = float((lam * fu).mean() + (y_ - lam * f_).mean())
    se = float(np.sqrt((lam * fu).std() ** 2 / fu.size + (y_ - lam * f_).std() ** 2 / y_.size))
    low, high = _interval(value, se, 1 - alpha, None)
    return value, low, high  # type: ignore[return-value]


def _within_cov(index: np.ndarray, n_h: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """Per-stratum sample covariance (ddof 1) of u and v. A stratum with one item borrows the pooled
    within-stratum value (the one over all items when no stratum has two); None with fewer than two items."""
    k = n_h.size
    mu = np.divide(np.bincount(index, u, k), n_h, out=np.zeros(k), where=n_h > 0)
    mv = np.divide(np.bincount(index, v, k), n_h, out=np.zeros(k), where=n_h > 0)
    cross = np.bincount(index, (u - mu[index]) * (v - mv[index]), k)
    many = n_h >= 2
    if many.any():
        pooled = cross[many].sum() / (n_h[many] - 1).sum()
    elif u.size >= 2:
        pooled = float(((u - u.mean()) * (v - v.mean())).sum() / (u.size - 1))
    else:
        return None
    return np.where(many, cross / np.maximum(n_h - 1, 1), pooled)


def stratified_ppi(
    y: Sequence[float],
    yhat: Sequence[float],
    strata: Sequence,
    yhat_all: Sequence[float],
    strata_all: Sequence,
    *,
    lam: float | None = 1.0,
    level: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> PPIEstimate:
    """Stratum-weighted PPI of the mean of `y` over the population (see the module docstring).

    Args:
        y: human labels of the labelled items.
        yhat: the judge's values of the same items.
        strata: the stratum of each labelled item.
        yhat_all: the judge's values of every item of the population (labelled ones included).
        strata_all: the stratum of each population item.
        lam: how much of the judge to use: 1 is PPI, 0 the labels alone; None tunes it (PPI++) to the
            value that minimises the estimated variance, clipped to [0, 1].
        level: confidence level of the interval.
        bounds: the scale's range, to clip the interval to.
    """
    y_, f_, fa = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_all))
    if not (y_.size == f_.size == len(strata)) or fa.size != len(strata_all):
        raise ValueError("labels, judge values and strata differ in length")
    if fa.size == 0 or y_.size == 0:
        return PPIEstimate(None, None, None, None, int(y_.size), int(fa.size))
    keys, sizes = np.unique(np.asarray(strata_all, dtype=str), return_counts=True)
    index = np.searchsorted(keys, np.asarray(strata, dtype=str))
    if np.any(index >= keys.size) or np.any(keys[np.minimum(index, keys.size - 1)] != np.asarray(strata, dtype=str)):
        raise ValueError("a labelled item's stratum is not in the population")
    n_h = np.bincount(index, minlength=keys.size)
    labelled = n_h > 0
    weights = np.where(labelled, sizes, 0) / sizes[labelled].sum()
    c = np.divide(weights**2, n_h, out=np.zeros(keys.size), where=labelled)  # each stratum's share of Var
    var_f = float(fa.var(ddof=1)) / fa.size if fa.size >= 2 else 0.0
    if lam is None:  # PPI++: d Var / d lambda = 0
        cov_yf, var_ff = _within_cov(index, n_h, y_, f_), _within_cov(index, n_h, f_, f_)
        den = var_f + float((c * var_ff).sum()) if var_ff is not None else 0.0
        lam = float(np.clip((c * cov_yf).sum() / den, 0.0, 1.0)) if cov_yf is not None and den > 0 else 1.0
    r = y_ - lam * f_
    means = np.divide(np.bincount(index, r, keys.size), n_h, out=np.zeros(keys.size), where=labelled)
    value = float(lam * fa.mean() + (weights * means).sum())
    s2 = _within_cov(index, n_h, r, r)
    se = None if s2 is None else float(np.sqrt(lam**2 * var_f + (c * s2).sum()))
    low, high = _interval(value, se, level, bounds)
    return PPIEstimate(value, low, high, se, int(y_.size), int(fa.size), int(keys.size), int((~labelled).sum()), lam)


def difference(a: PPIEstimate, b: PPIEstimate, *, level: float = 0.95) -> PPIEstimate:
    """b - a for estimates from separate label samples, as if independent: se = sqrt(se_a^2 + se_b^2)."""
    if a.value is None or b.value is None:
        return _EMPTY
    se = None if a.se is None or b.se is None else float(np.hypot(a.se, b.se))
    low, high = _interval(b.value - a.value, se, level, None)
    return PPIEstimate(b.value - a.value, low, high, se, a.n_labelled + b.n_labelled, a.n_total + b.n_total)


@dataclass(frozen=True)
class Calibration:
    """One judge of a run checked against one labeller's sample of that run."""

    run_id: str
    judge: str
    labeller: str
    """The labeller's judge identity, `human:<name>`."""
    sample: dict | None
    """The stored sample the labels belong to (`LabelSample.to_dict()`), None if none was drawn."""
    n_labels: int
    """The labeller's labels of this run."""
    n_labelled: int
    """Labels used: in the sample, on items the judge scored."""
    n_outside_sample: int
    n_judge_unscored: int
    """Labelled sample items the judge left unscored or has not judged (left out)."""
    frame_changed: bool
    """The run's items with a response differ from when the sample was drawn."""
    agreement: JudgePairAgreement
    """Human (A) against judge (B) on the labelled sample."""
    raw_harmfulness: Estimate
    corrected_harmfulness: PPIEstimate
    raw_harmful_share: Estimate
    corrected_harmful_share: PPIEstimate
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["agreement"] = self.agreement.to_dict()
        d["method"] = "stratified PPI (lambda = 1), normal 95% interval"
        return d


def calibrate(
    run_id: str,
    judge: str,
    labeller: str,
    rows: Sequence,
    labels: dict[str, int],
    sample: dict | None,
    sample_items: Sequence[tuple[str, str]],
    frame_now: dict[str, int],
    *,
    level: float = 0.95,
    seed: int = 0,
) -> Calibration:
    """A `Calibration` from plain values: the judge's run rows (`RunRow`-like: item_id, score, harmful,
    principle, source), the labels by item id, and the sample ((item id, stratum) pairs)."""
    pop = [r for r in rows if r.score is not None]
    harmful = [float(r.harmful if r.harmful is not None else r.score >= PAPER_HARMFUL_SCORE) for r in pop]
    by_id = {r.item_id: (r, h) for r, h in zip(pop, harmful, strict=True)}
    in_sample = [(i, s) for i, s in sample_items if i in labels]
    used = [(i, s) for i, s in in_sample if i in by_id]
    notes = []
    y = np.array([labels[i] for i, _ in used], dtype=float)
    f = np.array([by_id[i][0].score for i, _ in used], dtype=float)
    fh = np.array([by_id[i][1] for i, _ in used], dtype=float)
    strata = [s for _, s in used]
    strata_all = [stratum_key(r.principle, r.source) for r in pop]
    raw = bootstrap_mean([r.score for r in pop], seed=seed)
    raw_share = bootstrap_mean(harmful, seed=seed)
    if sample is None:
        notes.append("no stored sample: draw one with `medsafety label RUN --sample N` before labelling")
        corrected = corrected_share = PPIEstimate(None, None, None, None, 0, len(pop))
    else:
        corrected = stratified_ppi(y, f, strata, [r.score for r in pop], strata_all, level=level, bounds=(1, 5))
        corrected_share = stratified_ppi(
            y >= PAPER_HARMFUL_SCORE, fh, strata, harmful, strata_all, level=level, bounds=(0, 1)
        )
        if 0 < corrected.n_labelled < 2 * corrected.n_strata:
            notes.append(
                f"{corrected.n_labelled} labels for {corrected.n_strata} strata: with fewer than two per "
                "stratum the intervals run too narrow (docs/reports.md); label more"
            )
        if corrected.n_strata_unlabelled:
            notes.append(
                f"{corrected.n_strata_unlabelled} of {corrected.n_strata} strata have no label: their "
                "weight went to the labelled strata"
            )
    frame_changed = sample is not None and {k: v["frame"] for k, v in sample["strata"].items()} != frame_now
    if frame_changed:
        notes.append("the run's responses changed since the sample was drawn: draw a new sample")
    agreement = judge_pair_agreement([int(v) for v in y], [int(v) for v in f])
    return Calibration(
        run_id=run_id,
        judge=judge,
        labeller=labeller,
        sample=sample,
        n_labels=len(labels),
        n_labelled=len(used),
        n_outside_sample=len(labels) - len(in_sample),
        n_judge_unscored=sum(1 for i, _ in in_sample if i not in by_id),
        frame_changed=frame_changed,
        agreement=agreement,
        raw_harmfulness=raw,
        corrected_harmfulness=corrected,
        raw_harmful_share=raw_share,
        corrected_harmful_share=corrected_share,
        notes=tuple(notes),
    )


def calibrate_run(
    store: Store,
    run_id: str,
    *,
    judge_identity: str | None = None,
    labeller: str | None = None,
    level: float = 0.95,
    seed: int = 0,
) -> list[Calibration]:
    """The run's judge (its primary one unless given) against each person who labelled the run (or only
    `labeller`, a name or `human:<name>`); empty when nobody did."""
    info = store.run(run_id)
    judge = judge_identity or next((j for j in info.judges if not is_human(j)), None)
    people = [j for j in info.judges if is_human(j)]
    if labeller is not None:
        people = [p for p in people if p == human_identity(labeller)]
    if judge is None or is_human(judge) or not people:
        return []
    rows = store.run_rows(info.id, judge)
    frame_now: dict[str, int] = {}
    for r in rows:
        if r.response is not None:
            k = stratum_key(r.principle, r.source)
            frame_now[k] = frame_now.get(k, 0) + 1
    out = []
    for person in people:
        labels = run_labels(store, info.id, person)
        if not labels:
            continue
        sample = sample_for(store, info.id, person, labels)
        out.append(
            calibrate(
                info.id,
                judge,
                person,
                rows,
                {k: v.score for k, v in labels.items()},
                sample.to_dict() if sample else None,
                sample.items if sample else (),
                frame_now,
                level=level,
                seed=seed,
            )
        )
    return out
