"""The fine-tuning sweep on a Ray cluster: the points run side by side, the driver alone writes the store.

`run_sweep_ray(store, plan, project_dir, RaySweepOptions(...))` makes the same points, runs, rows and
numbers as `finetune.sweep.run_sweep` (it shares `prepare_sweep` and `point_record` with it), but every
point runs at once, as far as the cluster's resources allow:

1. training: a Ray task (`num_gpus`/`num_cpus` declared) calls `finetune` on a worker, writing the
   adapter to the same absolute path the in-process sweep uses (`PROJECT/finetune/adapters/<key>`);
   when the worker is on another node its files come back and the driver puts them in place there.
   An adapter already complete in the project is reused, never retrained;
2. evaluation and over-refusal: a `RayChatModel` for `hf:BASE+ADAPTER` (`replicas` actors, the adapter
   staged on their nodes when missing) feeds `pipeline.evaluate` and `over_refusal` on the driver, which
   stores every response and runs the judge, exactly as in one process;
3. medical QA: the point's replicas compute the log-likelihoods; the driver stores them (through its own
   connection to the same store file, from a thread, so the other points go on meanwhile).

A point that fails (a worker crash, an exception in training, every replica lost) is tried again up to
`max_retries` times; each try redoes only what the store and the adapter folder lack. A point that
still fails is reported in `SweepResult.failures` (the CLI names it and exits 1); a `UserError` (a
mistake to fix, not a fault) is reported at once. The base must be at the same path on every node (see
docs/cluster.md); the project folder need not be shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluation.pipeline import Progress, evaluate
from ..models.hf_backend import HFChatModel
from ..models.ray_engine import RayChatModel, connect, pack_dir, stage_dir
from ..store import Store
from .overrefusal import over_refusal
from .sweep import (
    BASE_KIND,
    PointFailure,
    PreparedSweep,
    SweepPlan,
    SweepPoint,
    SweepResult,
    _medqa_accuracy,
    _scores_by_item,
    compare_with_base,
    point_record,
    prepare_sweep,
    save_point,
)
from .train import MANIFEST, finetune, load_manifest


@dataclass(frozen=True)
class RaySweepOptions:
    """How the sweep uses the cluster."""

    address: str | None = None
    """Ray cluster address (None: $RAY_ADDRESS, else a new local cluster)."""
    num_gpus: float | None = None
    """GPUs per training task and per replica (None: 1 when the cluster has GPUs, else 0)."""
    num_cpus: float = 1
    """CPUs per training task and per replica."""
    replicas: int = 1
    """Model replicas per point for evaluation, over-refusal and medical QA."""
    max_retries: int = 1
    """Tries of a failed point after the first."""
    train: Callable[..., Any] | None = None
    """Replaces `finetune` on the workers (same signature); for fault-injection tests."""


def _train_point(
    train: Callable[..., Any] | None,
    base: str,
    data: Any,
    out: str,
    settings: Any,
    data_dir: str | None,
    driver_node: str,
) -> tuple[dict, bool, dict[str, bytes] | None]:
    """Runs on a worker: fine-tune into `out`; return the manifest, whether it was reused, and the adapter's
    files when this worker is on another node than the driver."""
    import ray

    result = (train or finetune)(base, data, out, settings, resume=True, data_dir=data_dir)
    same_node = ray.get_runtime_context().get_node_id() == driver_node
    return result.manifest, result.reused, None if same_node else pack_dir(result.out)


class _Labelled:
    """Progress of one point: its stages carry the point's name, as points run side by side."""

    def __init__(self, inner: Progress | None, label: str) -> None:
        self.inner, self.label = inner, label

    def start(self, stage: str, total: int) -> None:
        if self.inner is not None:
            self.inner.start(f"{self.label} {stage}", total)

    def advance(self, stage: str, n: int = 1) -> None:
        if self.inner is not None:
            self.inner.advance(f"{self.label} {stage}", n)


def _complete(out: Path, key: str) -> bool:
    return (out / MANIFEST).is_file() and load_manifest(out).get("adapter_key") == key


def _medqa_in_thread(
    path: Path, spec: str, plan: SweepPlan, progress: Any, view: Any
) -> tuple[dict | None, str | None]:
    with Store(path) as store:  # the driver's own second connection: the loop's stays on its thread
        return _medqa_accuracy(store, spec, plan, progress, model=view)


def _reason(exc: BaseException) -> str:
    """One line saying why a try failed (the cause of a Ray task error, not Ray's wrapping)."""
    cause = getattr(exc, "cause", None)
    src = cause if isinstance(cause, BaseException) else exc
    lines = [line for line in str(src).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return (first if isinstance(src, UserError) else f"{type(src).__name__}: {first}")[:300]


def run_sweep_ray(
    store: Store,
    plan: SweepPlan,
    project_dir: str | Path,
    options: RaySweepOptions | None = None,
    *,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> SweepResult:
    """The sweep of `plan` with every point on the Ray cluster (see module docstring).

    Args:
        store: the project store (only this process writes it).
        plan: what to sweep (as for `run_sweep`).
        project_dir: the project folder; adapters go to PROJECT/finetune/adapters.
        options: cluster settings and retries.
        progress: progress sink; each point's stages are labelled with the point.
        log: one-line messages (adapters, retries).

    Returns:
        The points that finished, in plan order, and the points that failed for good.
    """
    options = options or RaySweepOptions()
    if options.max_retries < 0 or options.replicas < 1:
        raise UserError("--max-retries must be 0 or more and --replicas at least 1")
    prep = prepare_sweep(store, plan, project_dir)
    plan = prep.plan
    ray = connect(options.address)
    gpus = options.num_gpus if options.num_gpus is not None else (1 if ray.cluster_resources().get("GPU", 0) else 0)
    train_task = ray.remote(_train_point).options(num_gpus=gpus, num_cpus=options.num_cpus, max_retries=0)
    driver_node = ray.get_runtime_context().get_node_id()
    done: dict[tuple[str, int], tuple[SweepPoint, dict | None, str | None]] = {}
    failures: list[PointFailure] = []

    async def attempt(kind: str, n: int) -> tuple[SweepPoint, dict | None, str | None]:
        key = out = None
        trained = False
        stage: dict[str, dict[str, bytes]] | None = None
        if kind != BASE_KIND:
            key, out = prep.adapter_for(kind, n)
            if not _complete(out, key):
                log(f"{kind} n={n}: training adapter {key} on the cluster")
                manifest, reused, files = await train_task.remote(
                    options.train,
                    plan.base,
                    prep.datasets[(kind, n)],
                    str(out),
                    plan.settings,
                    plan.data_dir,
                    driver_node,
                )
                if files is not None:
                    stage_dir(out, files)
                if manifest.get("adapter_key") != key:
                    raise UserError(f"{out}: its manifest belongs to another fine-tune; move it away")
                trained = not reused
            elif load_manifest(out).get("adapter_key") != key:
                raise UserError(f"{out}: its manifest belongs to another fine-tune; move it away")
            stage = {str(out): pack_dir(out)}
        spec = prep.spec_for(out)
        label = _Labelled(progress, f"{kind} n={n}")
        adapter = None if out is None else str(out)
        identity = HFChatModel(prep.base_ref, adapter, prompt_format=plan.prompt_format).identity
        # replicas start when a response or a score is missing: a point whose results are all stored starts none
        model = RayChatModel(
            spec,
            {"prompt_format": plan.prompt_format, "batch_size": plan.batch_size},
            replicas=options.replicas,
            num_gpus=gpus,
            num_cpus=options.num_cpus,
            stage=stage,
            identity=identity,
            start=False,
        )
        try:
            outcome = await evaluate(
                store, prep.items, model, prep.judge, model_spec=spec, settings=prep.settings, progress=label
            )
            refusal = (
                await over_refusal(store, model, prep.benign, model_spec=spec, settings=prep.settings, progress=label)
                if prep.benign
                else None
            )
            point = point_record(store, prep, kind, n, key, out, outcome, refusal, trained, None)
            save_point(store, prep.sweep_id, point)
            view = (
                model.loglik_view("raw", HFChatModel(prep.base_ref, adapter, prompt_format="raw").identity)
                if plan.medqa_tasks
                else None
            )
            medqa, note = await asyncio.to_thread(_medqa_in_thread, store.path, spec, plan, label, view)
        finally:
            await model.aclose()
        return point, medqa, note

    async def run_point(kind: str, n: int) -> None:
        tries = options.max_retries + 1
        for k in range(1, tries + 1):
            try:
                done[(kind, n)] = await attempt(kind, n)
                return
            except UserError as exc:
                failures.append(PointFailure(kind, n, k, _reason(exc)))
                return
            except Exception as exc:
                log(f"{kind} n={n}: try {k} of {tries} failed: {_reason(exc)}")
                if k == tries:
                    failures.append(PointFailure(kind, n, k, _reason(exc)))

    async def go() -> None:
        try:
            await asyncio.gather(*(run_point(kind, n) for kind, n in prep.points_todo))
        finally:
            await prep.judge.aclose()

    asyncio.run(go())
    return _finish(store, prep, done, failures)


def _finish(store: Store, prep: PreparedSweep, done: dict, failures: list[PointFailure]) -> SweepResult:
    """Compare each point with the base (once every point is in), store the rows, keep plan order."""
    base = done.get((BASE_KIND, 0))
    base_scores = _scores_by_item(store, base[0].run_id, prep.judge.identity) if base else None
    points: list[SweepPoint] = []
    medqa_note: str | None = None
    for kind, n in prep.points_todo:
        if (kind, n) not in done:
            continue
        point, medqa, medqa_note = done[(kind, n)]
        if kind != BASE_KIND and base_scores is not None:
            point.vs_base = compare_with_base(store, prep, point.run_id, base_scores)
        point.medqa = medqa
        save_point(store, prep.sweep_id, point)
        points.append(point)
    order = {kn: i for i, kn in enumerate(prep.points_todo)}
    failures.sort(key=lambda f: order[(f.data_kind, f.n)])
    return SweepResult(prep.sweep_id, points, prep.benign_note, medqa_note, failures)
