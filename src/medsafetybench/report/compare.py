"""Paired comparison of two runs on the items they share (matched by item id), overall and per
principle: mean difference (B - A) with a paired bootstrap interval and a Wilcoxon signed-rank test
(`metrics.paired_comparison`), and the same for the refusal rate. Both runs are read under one judge: the
judge they share (A's primary judge when B has it too), or each run's primary judge with a warning. Only
items scored in both runs count; the rest are reported."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UserError
from ..metrics import PairedComparison, paired_comparison
from ..principles import principle as principle_info
from ..store import RunInfo, Store


@dataclass
class RunComparison:
    run_a: RunInfo
    run_b: RunInfo
    n_shared: int  # item ids in both runs
    n_only_a: int
    n_only_b: int
    n_not_scored: int  # shared items without a score in A or B
    overall: PairedComparison
    by_principle: list[tuple[str, PairedComparison]]
    judge_a: str = ""
    judge_b: str = ""
    refusal: PairedComparison | None = None
    """Refusal rate (0/1 per item), B - A, over the items both runs answered."""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "run_a": self.run_a.id,
            "model_a": self.run_a.model_spec,
            "judge_a": self.judge_a,
            "run_b": self.run_b.id,
            "model_b": self.run_b.model_spec,
            "judge_b": self.judge_b,
            "refusal": asdict(self.refusal) if self.refusal else None,
            "warnings": list(self.warnings),
            "n_shared": self.n_shared,
            "n_only_a": self.n_only_a,
            "n_only_b": self.n_only_b,
            "n_not_scored": self.n_not_scored,
            "overall": asdict(self.overall),
            "by_principle": [{"principle": name, **asdict(c)} for name, c in self.by_principle],
        }


def compare_runs(store: Store, run_a: str, run_b: str, *, seed: int = 0, judge: str | None = None) -> RunComparison:
    from ..evaluation.pipeline import refusal_flags

    a, b = store.run(run_a), store.run(run_b)
    if a.id == b.id:
        raise UserError(f"RUN_A and RUN_B are the same run ({a.id}): name two different runs")
    warnings = []
    if judge is not None:
        judge_a, judge_b = (store.run_judge_identity(run.id, judge) for run in (a, b))
        if judge_a != judge_b:
            warnings.append(f"'{judge}' names two judges ({judge_a}, {judge_b}): score differences mix model and judge")
    else:
        shared_judges = [j for j in a.judges if j in b.judges and not j.startswith("human:")]
        judge_a = judge_b = shared_judges[0] if shared_judges else ""
        if not shared_judges:
            judge_a, judge_b = a.judge_identity, b.judge_identity
            warnings.append("the runs share no judge: score differences mix model and judge")
    if a.settings_digest != b.settings_digest:
        warnings.append("the runs used different settings (system prompt or decoding)")
    rows_a = {r.item_id: r for r in store.run_rows(a.id, judge_a or None)}
    rows_b = {r.item_id: r for r in store.run_rows(b.id, judge_b or None)}
    shared = [i for i in rows_a if i in rows_b]
    if not shared:
        raise UserError(f"runs {a.id[:8]} and {b.id[:8]} share no item ids: compare runs over the same items")
    pairs = [(rows_a[i], rows_b[i]) for i in shared if rows_a[i].score is not None and rows_b[i].score is not None]
    overall = paired_comparison([x.score for x, _ in pairs], [y.score for _, y in pairs], seed=seed)
    by_principle = []
    for p in sorted({x.principle for x, _ in pairs if x.principle is not None}):
        sub = [(x.score, y.score) for x, y in pairs if x.principle == p]
        by_principle.append(
            (
                f"{p}. {principle_info(p).short_name}",
                paired_comparison([s for s, _ in sub], [t for _, t in sub], seed=seed),
            )
        )
    answered = [i for i in shared if rows_a[i].response is not None and rows_b[i].response is not None]
    ref_a = refusal_flags([rows_a[i].response for i in answered])
    ref_b = refusal_flags([rows_b[i].response for i in answered])
    refusal = paired_comparison([float(bool(x)) for x in ref_a], [float(bool(y)) for y in ref_b], seed=seed)
    return RunComparison(
        run_a=a,
        run_b=b,
        n_shared=len(shared),
        n_only_a=len(rows_a) - len(shared),
        n_only_b=len(rows_b) - len(shared),
        n_not_scored=len(shared) - len(pairs),
        overall=overall,
        by_principle=by_principle,
        judge_a=judge_a,
        judge_b=judge_b,
        refusal=refusal,
        warnings=tuple(warnings),
    )
