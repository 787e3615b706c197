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
from ..errors import UserError
from ..judging import load_judge
from ..metrics import Estimate, PairedComparison, paired_comparison
from ..models.base import GenerationConfig
from ..models.hf_backend import HFChatModel
from ..pipeline import EvalSettings, Progress, evaluate
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

    def validate(self) -> SweepPlan:
        for k in self.kinds:
            if k not in DATA_KINDS:
                raise UserError(f"--data '{k}' is unknown: use a comma list of med, gen, both")
        if not self.kinds or not self.ns:
            raise UserError("give at least one --data kind and one --n")
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


def ensure_schema(store: Store) -> None:
    """Kept for callers: the tables are created and migrated when the store opens (`migrations`)."""


def _medqa_accuracy(store: Store, model_spec: str, plan: SweepPlan,
                    progress: Progress | None) -> tuple[dict | None, str | None]:
    """Medical QA accuracy of one point through `medsafetybench.medqa.evaluate_medqa` (scores cached in
    its own store table), when that module is installed and tasks were asked for."""
    if not plan.medqa_tasks:
        return None, "medical QA accuracy not requested: pass --medqa TASKS (e.g. medqa,pubmedqa) to add it"
    try:
        from ..medqa import evaluate_medqa
    except ImportError:
        return None, "medical QA accuracy is not available (medsafetybench.medqa is not installed)"
    result = evaluate_medqa(store, model_spec, list(plan.medqa_tasks), plan.medqa_dir, plan.medqa_limit,
                            plan.batch_size, progress)
    return {"macro_acc": result.macro, "accuracy": result.accuracy()}, None


def _scores_by_item(store: Store, run_id: str, judge_identity: str) -> dict[str, int]:
    return {r.item_id: r.score for r in store.run_rows(run_id, judge_identity) if r.score is not None}


def sweep_id_for(base_id: str, judge_identity: str, plan: SweepPlan) -> str:
    blob = json.dumps({"base": base_id, "judge": judge_identity, "plan": plan.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_sweep(store: Store, plan: SweepPlan, project_dir: str | Path, *, progress: Progress | None = None,
              train_progress: Callable[[str, int], TrainProgress | None] | None = None,
              log: Callable[[str], None] = lambda s: None) -> SweepResult:
    """Fine-tune, evaluate and compare every point of `plan` (see module docstring)."""
    plan = plan.validate()
    base_ref, source = resolve_base(plan.base)
    base_id = base_identity(source)
    items = load_items("eval", data_dir=plan.data_dir, limit=plan.limit)
    benign, benign_note = None, None
    try:
        benign = load_benign_questions(plan.benign_file, medqa_dir=plan.medqa_dir, limit=plan.benign_limit)
    except UserError as exc:
        if plan.benign_file:
            raise
        benign_note = f"over-refusal not measured: {exc}"
    # every training set is resolved (and checked) before any training starts
    datasets = {(k, n): resolve_training_data(k, n, data_dir=plan.data_dir, seed=plan.settings.seed)
                for k in plan.kinds for n in plan.ns if n > 0}
    judge = load_judge(plan.judge, batch_size=plan.batch_size)
    ensure_schema(store)
    sweep_id = sweep_id_for(base_id, judge.identity, plan)
    with store.transaction() as c:
        c.execute("INSERT OR IGNORE INTO sweeps VALUES (?, ?, ?, ?, ?)",
                  (sweep_id, time.time(), plan.base, judge.identity, json.dumps(plan.to_dict(), sort_keys=True)))
    adapters = Path(project_dir).expanduser().resolve() / "finetune" / "adapters"
    settings = EvalSettings(system_prompt=plan.system_prompt,
                            generation=GenerationConfig(max_new_tokens=plan.max_new_tokens))
    points_todo = [(BASE_KIND, 0)] + sorted(datasets, key=lambda kn: (plan.kinds.index(kn[0]), kn[1]))
    medqa_note: str | None = None

    async def go() -> list[SweepPoint]:
        points: list[SweepPoint] = []
        base_scores: dict[str, int] = {}
        try:
            for kind, n in points_todo:
                key = path = None
                trained = False
                if kind == BASE_KIND:
                    spec = f"hf:{base_ref}"
                    adapter = None
                else:
                    data = datasets[(kind, n)]
                    key = adapter_key(base_id, data.sha256, plan.settings)
                    out = adapters / key
                    path = str(out)
                    log(f"{kind} n={n}: adapter {key}")
                    tp = train_progress(f"{kind} n={n}", n) if train_progress else None
                    result = await asyncio.to_thread(finetune, plan.base, data, out, plan.settings, resume=True,
                                                     data_dir=plan.data_dir, progress=tp)
                    if result.manifest.get("adapter_key") != key:
                        raise UserError(f"{out}: its manifest belongs to another fine-tune; move it away")
                    trained = not result.reused
                    result = None  # frees the in-memory copy before the model is loaded for evaluation
                    spec, adapter = f"hf:{base_ref}+{out}", str(out)
                model = HFChatModel(base_ref, adapter, prompt_format=plan.prompt_format, batch_size=plan.batch_size)
                try:
                    outcome = await evaluate(store, items, model, judge, model_spec=spec, settings=settings,
                                             progress=progress)
                    refusal = (await over_refusal(store, model, benign, model_spec=spec, settings=settings,
                                                  progress=progress) if benign else None)
                finally:
                    await model.aclose()
                scores = _scores_by_item(store, outcome.run_id, judge.identity)
                vs_base = None
                if kind == BASE_KIND:
                    base_scores = scores
                else:
                    shared = sorted(set(base_scores) & set(scores))
                    vs_base = paired_comparison([base_scores[i] for i in shared], [scores[i] for i in shared])
                o = outcome.summary.overall
                point = SweepPoint(kind, n, spec, key, path, outcome.run_id, o.n, o.n_scored, o.harmfulness,
                                   vs_base, refusal, None, trained, o.refusal_rate)
                save_point(store, sweep_id, point)
                points.append(point)
        finally:
            await judge.aclose()
        return points

    points = asyncio.run(go())
    for point in points:  # medical QA runs its own event loops, so it goes after the sweep's
        point.medqa, medqa_note = _medqa_accuracy(store, point.model_spec, plan, progress)
        if point.medqa is not None:
            save_point(store, sweep_id, point)
    return SweepResult(sweep_id, points, benign_note, medqa_note)


def save_point(store: Store, sweep_id: str, p: SweepPoint) -> None:
    d = p.vs_base
    r = p.over_refusal
    acc = p.medqa.get("macro_acc") if isinstance(p.medqa, dict) else None
    row = {"sweep_id": sweep_id, "data_kind": p.data_kind, "n": p.n, "model_spec": p.model_spec,
           "adapter_key": p.adapter_key, "adapter_path": p.adapter_path, "run_id": p.run_id, "n_items": p.n_items,
           "n_scored": p.n_scored, "harm_mean": p.harmfulness.value, "harm_low": p.harmfulness.low,
           "harm_high": p.harmfulness.high,
           "diff_mean": d.difference.value if d else None, "diff_low": d.difference.low if d else None,
           "diff_high": d.difference.high if d else None, "n_paired": d.n if d else None,
           "wilcoxon_p": d.wilcoxon_p if d else None,
           "over_refusal": r.rate.value if r else None, "over_refusal_low": r.rate.low if r else None,
           "over_refusal_high": r.rate.high if r else None, "n_benign": r.n if r else None,
           "benign_run_id": r.run_id if r else None, "refusal_detector": r.detector if r else None,
           "medqa_acc": acc if isinstance(acc, (int, float)) else None,
           "medqa": json.dumps(p.medqa) if p.medqa is not None else None,
           "refusal_rate": p.refusal.value if p.refusal else None, "refusal_low": p.refusal.low if p.refusal else None,
           "refusal_high": p.refusal.high if p.refusal else None, "updated_at": time.time()}
    with store.transaction() as c:
        c.execute(f"INSERT OR REPLACE INTO sweep_points ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                  tuple(row.values()))


def sweep_rows(store: Store, sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of `sweep_points` (all sweeps, or one) as dicts, ordered for curves: kind, then n."""
    ensure_schema(store)
    sql = "SELECT * FROM sweep_points" + (" WHERE sweep_id = ?" if sweep_id else "") + " ORDER BY sweep_id, data_kind, n"
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


__all__: Sequence[str] = ["SweepPlan", "SweepPoint", "SweepResult", "run_sweep", "sweep_rows", "parse_ns",
                          "kinds_from", "ensure_schema", "BASE_KIND"]
