"""The paper's study in one call: fine-tune a base model at several n per data kind, evaluate every
point with the same judge on the same MedSafety-Eval items, and compare each against the base (n = 0).

`run_sweep(store, plan, project_dir)` walks the points: base first, then (kind, n) for every kind
and n. A point's adapter lives in `PROJECT/finetune/adapters/<adapter_key>/` where the key hashes
the base identity (weights fingerprint), the training data's SHA-256 and the hyperparameters; an
adapter whose manifest carries that key is reused, never retrained, and a killed training resumes
from its last checkpoint. Evaluation goes through `pipeline.evaluate` and the over-refusal
responses through `pipeline.respond`, so every response and judgement comes from the store when it
is there: a re-run does no training, no model calls and no judge calls.

Results go to two tables in the run store (schema in docs/finetune.md): `sweeps` (one row per
sweep: id and config) and `sweep_points` (one row per point: harmfulness with its interval, the
paired comparison against the base, over-refusal, medical QA accuracy when available).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..data import load_items
from ..data.sampling import stratified_sample
from ..errors import UserError
from ..evaluation.pipeline import EvalSettings, Progress, evaluate
from ..judging import load_judge
from ..metrics import Estimate, PairedComparison, paired_comparison
from ..models.base import GenerationConfig
from ..models.hf_backend import HFChatModel
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from ..store import Store
from .data import DATA_KINDS, resolve_training_data
from .overrefusal import OverRefusal, load_benign_questions, over_refusal
from .train import LoraSettings, TrainProgress, adapter_key, base_identity, finetune, resolve_base

BASE_KIND = "base"


@dataclass(frozen=True)
class SweepPlan:
    """What to sweep. The evaluation prompt format of every point (base included) is the training
    template, so the base and the fine-tunes are asked the same way."""

    base: str
    kinds: tuple[str, ...]
    ns: tuple[int, ...]
    judge: str = "offline"
    settings: LoraSettings = field(default_factory=LoraSettings)
    limit: int | None = None
    max_new_tokens: int = 512
    system_prompt: str | None = LLAMA2_DEFAULT_SYSTEM_PROMPT
    batch_size: int = 8
    data_dir: str | None = None
    benign_file: str | None = None
    medqa_dir: str | None = None
    benign_limit: int = 200
    medqa_tasks: tuple[str, ...] | None = None
    medqa_limit: int | None = None
    sample: int | None = None  # a seeded sample of MedSafety-Eval stratified by principle and source
    sample_seed: int = 0

    def validate(self) -> SweepPlan:
        for k in self.kinds:
            if k not in DATA_KINDS:
                raise UserError(f"--train-data '{k}' is unknown: use a comma list of med, gen, both")
        if not self.kinds or not self.ns:
            raise UserError("give at least one --train-data kind and one --n")
        if any(n < 0 for n in self.ns):
            raise UserError(f"--n values must be positive (got {', '.join(map(str, self.ns))})")
        self.settings.validate()
        return self

    @property
    def prompt_format(self) -> str:
        return self.settings.prompt_template

    def to_dict(self) -> dict:
        d = asdict(self)
        d["settings"] = self.settings.to_dict()
        if self.sample is None:  # sweeps planned before sampling existed keep their ids
            del d["sample"], d["sample_seed"]
        return d


@dataclass
class SweepPoint:
    data_kind: str
    n: int
    model_spec: str
    adapter_key: str | None
    adapter_path: str | None
    run_id: str
    n_items: int
    n_scored: int
    harmfulness: Estimate
    vs_base: PairedComparison | None
    over_refusal: OverRefusal | None
    medqa: dict | None
    trained: bool = False  # trained in this call (False: reused or base)
    refusal: Estimate | None = None  # refusal rate of the safety run (the refusal detector)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["over_refusal"] = self.over_refusal.to_dict() if self.over_refusal else None
        return d


@dataclass
class SweepResult:
    sweep_id: str
    points: list[SweepPoint]
    benign_note: str | None  # why over-refusal is missing, when it is
    medqa_note: str | None  # why medical QA accuracy is missing, when it is
    failures: list[PointFailure] = field(default_factory=list)
    """Points that failed for good (Ray sweeps go on with the other points; in-process sweeps raise)."""


@dataclass(frozen=True)
class PointFailure:
    data_kind: str
    n: int
    attempts: int
    error: str

    def __str__(self) -> str:
        tries = "try" if self.attempts == 1 else "tries"
        return f"{self.data_kind} n={self.n} failed after {self.attempts} {tries}: {self.error}"


def ensure_schema(store: Store) -> None:
    """Kept for callers: the tables are created and migrated when the store opens (`migrations`)."""


def _medqa_accuracy(
    store: Store, model_spec: str, plan: SweepPlan, progress: Progress | None, model: Any = None
) -> tuple[dict | None, str | None]:
    """Medical QA accuracy of one point through `medsafetybench.medqa.evaluate_medqa` (scores cached in
    its own store table), when that module is installed and tasks were asked for."""
    if not plan.medqa_tasks:
        return None, "medical QA accuracy not requested: pass --medqa TASKS (e.g. medqa,pubmedqa) to add it"
    try:
        from ..medqa import evaluate_medqa
    except ImportError:
        return None, "medical QA accuracy is not available (medsafetybench.medqa is not installed)"
    result = evaluate_medqa(
        store,
        model_spec,
        list(plan.medqa_tasks),
        plan.medqa_dir,
        plan.medqa_limit,
        plan.batch_size,
        progress,
        model=model,
    )
    return {
        "macro_acc": result.macro,
        "accuracy": result.accuracy(),
        "protocol": result.label,
        "settings": result.settings,
    }, None


def _scores_by_item(store: Store, run_id: str, judge_identity: str) -> dict[str, int]:
    return {r.item_id: r.score for r in store.run_rows(run_id, judge_identity) if r.score is not None}


def sweep_id_for(base_id: str, judge_identity: str, plan: SweepPlan) -> str:
    blob = json.dumps({"base": base_id, "judge": judge_identity, "plan": plan.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class PreparedSweep:
    """Everything a sweep needs before its first point, checked up front (shared by the in-process sweep
    and the Ray one, `finetune.ray_sweep`, so both make the same runs)."""

    plan: SweepPlan
    base_ref: str
    base_id: str
    items: list
    benign: list | None
    benign_note: str | None
    datasets: dict
    judge: Any
    sweep_id: str
    adapters: Path
    settings: EvalSettings
    points_todo: list[tuple[str, int]]

    def adapter_for(self, kind: str, n: int) -> tuple[str, Path]:
        """(adapter key, adapter folder) of a fine-tuned point."""
        key = adapter_key(self.base_id, self.datasets[(kind, n)].sha256, self.plan.settings)
        return key, self.adapters / key

    def spec_for(self, adapter: Path | None) -> str:
        return f"hf:{self.base_ref}" if adapter is None else f"hf:{self.base_ref}+{adapter}"


def prepare_sweep(store: Store, plan: SweepPlan, project_dir: str | Path) -> PreparedSweep:
    """Validate `plan`, load items, benign questions and every training set, build the judge and record
    the sweep (see `run_sweep`)."""
    plan = plan.validate()
    base_ref, source = resolve_base(plan.base)
    base_id = base_identity(source)
    items = load_items("eval", data_dir=plan.data_dir, limit=plan.limit)
    if plan.sample is not None:
        items = stratified_sample(items, plan.sample, plan.sample_seed)
    benign, benign_note = None, None
    try:
        benign = load_benign_questions(plan.benign_file, medqa_dir=plan.medqa_dir, limit=plan.benign_limit)
    except UserError as exc:
        if plan.benign_file:
            raise
        benign_note = f"over-refusal not measured: {exc}"
    # every training set is resolved (and checked) before any training starts
    datasets = {
        (k, n): resolve_training_data(k, n, data_dir=plan.data_dir, seed=plan.settings.seed)
        for k in plan.kinds
        for n in plan.ns
        if n > 0
    }
    judge = load_judge(plan.judge, batch_size=plan.batch_size)
    sweep_id = sweep_id_for(base_id, judge.identity, plan)
    with store.transaction() as c:
        c.execute(
            "INSERT OR IGNORE INTO sweeps VALUES (?, ?, ?, ?, ?)",
            (sweep_id, time.time(), plan.base, judge.identity, json.dumps(plan.to_dict(), sort_keys=True)),
        )
    adapters = Path(project_dir).expanduser().resolve() / "finetune" / "adapters"
    settings = EvalSettings(
        system_prompt=plan.system_prompt, generation=GenerationConfig(max_new_tokens=plan.max_new_tokens)
    )
    points_todo = [(BASE_KIND, 0)] + sorted(datasets, key=lambda kn: (plan.kinds.index(kn[0]), kn[1]))
    return PreparedSweep(
        plan, base_ref, base_id, items, benign, benign_note, datasets, judge, sweep_id, adapters, settings, points_todo
    )


def compare_with_base(store: Store, prep: PreparedSweep, run_id: str, base_scores: dict[str, int]) -> PairedComparison:
    """Paired comparison of a point's judge scores with the base's, on the items both have scored."""
    scores = _scores_by_item(store, run_id, prep.judge.identity)
    shared = sorted(set(base_scores) & set(scores))
    return paired_comparison([base_scores[i] for i in shared], [scores[i] for i in shared])


def point_record(
    store: Store,
    prep: PreparedSweep,
    kind: str,
    n: int,
    key: str | None,
    adapter: Path | None,
    outcome: Any,
    refusal: OverRefusal | None,
    trained: bool,
    base_scores: dict[str, int] | None,
) -> SweepPoint:
    """The sweep row of an evaluated point (compared with the base when `base_scores` are given)."""
    vs_base = None
    if kind != BASE_KIND and base_scores is not None:
        vs_base = compare_with_base(store, prep, outcome.run_id, base_scores)
    o = outcome.summary.overall
    return SweepPoint(
        kind,
        n,
        prep.spec_for(adapter),
        key,
        None if adapter is None else str(adapter),
        outcome.run_id,
        o.n,
        o.n_scored,
        o.harmfulness,
        vs_base,
        refusal,
        None,
        trained,
        o.refusal_rate,
    )


def run_sweep(
    store: Store,
    plan: SweepPlan,
    project_dir: str | Path,
    *,
    progress: Progress | None = None,
    train_progress: Callable[[str, int], TrainProgress | None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> SweepResult:
    """Fine-tune, evaluate and compare every point of `plan` (see module docstring)."""
    prep = prepare_sweep(store, plan, project_dir)
    plan = prep.plan
    medqa_note: str | None = None

    async def go() -> list[SweepPoint]:
        points: list[SweepPoint] = []
        base_scores: dict[str, int] = {}
        judge = prep.judge
        try:
            for kind, n in prep.points_todo:
                key = out = None
                trained = False
                if kind != BASE_KIND:
                    key, out = prep.adapter_for(kind, n)
                    log(f"{kind} n={n}: adapter {key}")
                    tp = train_progress(f"{kind} n={n}", n) if train_progress else None
                    result = await asyncio.to_thread(
                        finetune,
                        plan.base,
                        prep.datasets[(kind, n)],
                        out,
                        plan.settings,
                        resume=True,
                        data_dir=plan.data_dir,
                        progress=tp,
                    )
                    if result.manifest.get("adapter_key") != key:
                        raise UserError(f"{out}: its manifest belongs to another fine-tune; move it away")
                    trained = not result.reused
                    result = None  # frees the in-memory copy before the model is loaded for evaluation
                spec = prep.spec_for(out)
                model = HFChatModel(
                    prep.base_ref,
                    None if out is None else str(out),
                    prompt_format=plan.prompt_format,
                    batch_size=plan.batch_size,
                )
                try:
                    outcome = await evaluate(
                        store, prep.items, model, judge, model_spec=spec, settings=prep.settings, progress=progress
                    )
                    refusal = (
                        await over_refusal(
                            store, model, prep.benign, model_spec=spec, settings=prep.settings, progress=progress
                        )
                        if prep.benign
                        else None
                    )
                finally:
                    await model.aclose()
                point = point_record(
                    store,
                    prep,
                    kind,
                    n,
                    key,
                    out,
                    outcome,
                    refusal,
                    trained,
                    None if kind == BASE_KIND else base_scores,
                )
                if kind == BASE_KIND:
                    base_scores = _scores_by_item(store, outcome.run_id, judge.identity)
                save_point(store, prep.sweep_id, point)
                points.append(point)
        finally:
            await judge.aclose()
        return points

    points = asyncio.run(go())
    for point in points:  # medical QA runs its own event loops, so it goes after the sweep's
        point.medqa, medqa_note = _medqa_accuracy(store, point.model_spec, plan, progress)
        if point.medqa is not None:
            save_point(store, prep.sweep_id, point)
    return SweepResult(prep.sweep_id, points, prep.benign_note, medqa_note)


def save_point(store: Store, sweep_id: str, p: SweepPoint) -> None:
    d = p.vs_base
    r = p.over_refusal
    acc = p.medqa.get("macro_acc") if isinstance(p.medqa, dict) else None
    row = {
        "sweep_id": sweep_id,
        "data_kind": p.data_kind,
        "n": p.n,
        "model_spec": p.model_spec,
        "adapter_key": p.adapter_key,
        "adapter_path": p.adapter_path,
        "run_id": p.run_id,
        "n_items": p.n_items,
        "n_scored": p.n_scored,
        "harm_mean": p.harmfulness.value,
        "harm_low": p.harmfulness.low,
        "harm_high": p.harmfulness.high,
        "diff_mean": d.difference.value if d else None,
        "diff_low": d.difference.low if d else None,
        "diff_high": d.difference.high if d else None,
        "n_paired": d.n if d else None,
        "wilcoxon_p": d.wilcoxon_p if d else None,
        "over_refusal": r.rate.value if r else None,
        "over_refusal_low": r.rate.low if r else None,
        "over_refusal_high": r.rate.high if r else None,
        "n_benign": r.n if r else None,
        "benign_run_id": r.run_id if r else None,
        "refusal_detector": r.detector if r else None,
        "medqa_acc": acc if isinstance(acc, (int, float)) else None,
        "medqa": json.dumps(p.medqa) if p.medqa is not None else None,
        "refusal_rate": p.refusal.value if p.refusal else None,
        "refusal_low": p.refusal.low if p.refusal else None,
        "refusal_high": p.refusal.high if p.refusal else None,
        "updated_at": time.time(),
    }
    with store.transaction() as c:
        c.execute(
            f"INSERT OR REPLACE INTO sweep_points ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )


def sweep_rows(store: Store, sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of `sweep_points` (all sweeps, or one) as dicts, ordered for curves: kind, then n."""
    ensure_schema(store)
    sql = (
        "SELECT * FROM sweep_points" + (" WHERE sweep_id = ?" if sweep_id else "") + " ORDER BY sweep_id, data_kind, n"
    )
    cur = store.conn.execute(sql, (sweep_id,) if sweep_id else ())
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def parse_ns(text: str) -> tuple[int, ...]:
    try:
        ns = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise UserError(f"--n '{text}': give a comma list of whole numbers, e.g. 200,400,600") from None
    if not ns:
        raise UserError("--n names no value")
    return ns


def kinds_from(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


__all__: Sequence[str] = [
    "SweepPlan",
    "SweepPoint",
    "SweepResult",
    "run_sweep",
    "sweep_rows",
    "parse_ns",
    "kinds_from",
    "ensure_schema",
    "BASE_KIND",
]
