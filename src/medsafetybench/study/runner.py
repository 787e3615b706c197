"""Running a study: plan one run per model over the study's items, respond and judge each (streamed),
and tag the runs (`study:<name>`, `group:<group>`) so reports and leaderboards find them. Everything goes
through the store exactly as `eval` does: a re-run makes only the calls that are missing, and a study
interrupted anywhere resumes. `study_status` answers "how far along is each model" from the store alone,
without loading any weights or calling any service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..data.schema import Item
from ..errors import UserError
from ..evaluation.pipeline import EvalOutcome, Progress, evaluate
from ..evaluation.preflight import length_warnings_for
from ..evaluation.provenance import data_provenance, run_provenance
from ..judging import load_judge
from ..judging.base import Judge, JudgeCase, JudgeSpec
from ..metrics import Summary
from ..models import model_identity, redact_spec
from ..models.base import ChatModel
from ..models.deferred import DeferredModel
from ..models.engine import load_on_engine
from ..store import Store
from ..store.migrations import items_digest
from .spec import Study, StudyJudge, StudyModel

log = logging.getLogger(__name__)


@dataclass
class ModelResult:
    """What became of one model of a study."""

    model: StudyModel
    run_id: str | None = None
    outcome: EvalOutcome | None = None
    error: str | None = None

    @property
    def summaries(self) -> dict[str, Summary]:
        return self.outcome.summaries if self.outcome else {}


@dataclass
class StudyOutcome:
    study: Study
    results: list[ModelResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelResult]:
        """Models that could not be loaded or whose requests failed for good."""
        return [
            r
            for r in self.results
            if r.error or (r.outcome and (r.outcome.responses.failed or r.outcome.judgements.failed))
        ]


def build_judge(j: StudyJudge) -> Judge:
    judge = load_judge(j.spec, **j.options)
    if getattr(judge, "spec", None) is None:
        try:
            judge.spec = JudgeSpec(j.spec, dict(j.options))
        except AttributeError:  # a judge class with slots or a read-only attribute: nothing to record
            pass
    return judge


def _model_options(m: StudyModel) -> dict[str, Any]:
    return {"prompt_format": m.prompt_format, **m.options}


def _open_model(m: StudyModel, engine: str, items: Sequence[Item], store: Store) -> tuple[ChatModel, bool]:
    """(the model, whether every response is stored). A local model (hf:, vllm:) on the local engine whose
    every response is in the store is a `DeferredModel`: nothing is loaded unless a request is made."""
    spec = m.model
    options = _model_options(m)
    if engine == "local" and spec.backend in ("hf", "vllm"):
        try:
            identity = model_identity(spec, **options)
        except UserError:
            identity = None
        if identity is not None:
            keys = [m.settings.request_for(it).cache_key(identity) for it in items]
            if not store.missing_responses(keys):
                return DeferredModel(spec, options, identity), True
    return load_on_engine(spec, engine=engine, **options), False


def _provenance(study: Study, judges: Sequence[str]) -> dict:
    sel = study.items
    data = data_provenance(
        sel.split, list(sel.sources or []) or None, list(sel.principles or []) or None, sel.input_file
    )
    return {**run_provenance(data, list(judges)), "items": sel.to_dict(), "study": study.name}


async def run_study_async(
    study: Study,
    store: Store,
    *,
    only: Sequence[str] | None = None,
    progress_for: Callable[[StudyModel, int, int], Progress | None] | None = None,
    on_done: Callable[[ModelResult], None] | None = None,
    retry_unscored: bool = False,
    raise_errors: bool = False,
    warn: Callable[[str], None] | None = None,
    budget: Any = None,
    items: Sequence[Item] | None = None,
) -> StudyOutcome:
    """Evaluate every model of the study (or those named in `only`), one after another, with every judge.

    A model that cannot be loaded is recorded with its error and the study goes on with the next one
    (with `raise_errors`, its `UserError` propagates instead). `warn(line)` receives the warnings about
    requests longer than a model's context window (default: logged). With a `cost.budget.Budget`, priced
    models and LLM judges send only what it allows, and once it has held a request back no further model
    is started.
    requests longer than a model's context window (default: logged). `items`: the study's items when the
    caller has loaded them already (to check its inputs before it creates the store); else loaded here.
    """
    models = [study.model(n) for n in only] if only else list(study.models)
    items = list(items) if items is not None else study.items.load()
    judges = [build_judge(j) for j in study.judges]
    sink: list[Callable[[Any], None] | None] = [None]  # the current model's batch progress

    def on_batch_event(event: Any) -> None:
        if sink[0] is not None:
            sink[0](event)

    if study.batch:
        from ..batch.runner import BatchOptions, batch_judge

        batch_options = BatchOptions(timeout=study.batch_timeout, poll_interval=study.batch_poll)
        for j in judges:
            if not batch_judge(j, store, batch_options, on_batch_event):
                (warn or log.warning)(f"batch mode: judge {j.identity} has no batch API; it runs as usual")
    if budget is not None:
        for judge in judges:
            if getattr(judge, "model", None) is not None:
                judge.model = budget.wrap(judge.model, "judge", budget.prices.lookup(judge.model.identity))
    provenance = _provenance(study, [j.identity for j in judges])
    outcome = StudyOutcome(study)
    try:
        for k, m in enumerate(models, start=1):
            if budget is not None and budget.stopped:
                break
            result = ModelResult(m)
            progress = progress_for(m, k, len(models)) if progress_for else None
            model: ChatModel | None = None
            try:
                model, cached = _open_model(m, study.engine, items, store)
                for served in ((model,) if not cached else ()) + tuple(getattr(j, "model", None) for j in judges):
                    if hasattr(served, "describe_server"):  # the server's own window, when it states one
                        await served.describe_server()
                if study.batch:
                    from ..batch.runner import batched_model

                    sink[0] = getattr(progress, "batch_event", None)
                    batched = batched_model(model, store, batch_options, on_batch_event)
                    if batched is model:
                        (warn or log.warning)(f"batch mode: {m.name} has no batch API; it runs as usual")
                    model = batched
                if budget is not None:
                    model = budget.wrap(model, "model", budget.prices.lookup(model.identity))
                for line in [] if cached else length_warnings_for(model, judges, items, m.settings):
                    (warn or log.warning)(line)
                result.outcome = await evaluate(
                    store,
                    items,
                    model,
                    judges,
                    model_spec=m.model.display,
                    settings=m.settings,
                    progress=progress,
                    retry_unscored=retry_unscored,
                    name=m.name if m.name != m.spec else None,
                    provenance=provenance,
                    sequential=study.batch,
                )
                result.run_id = result.outcome.run_id
                info = store.run(result.run_id)
                tags = {
                    *info.tags,
                    *([study.tag] if study.tag_runs else []),
                    *([f"group:{m.group}"] if m.group else []),
                }
                store.set_run_fields(result.run_id, tags=sorted(tags))
            except UserError as exc:
                if raise_errors:
                    raise
                result.error = str(exc)
            finally:
                if progress is not None and hasattr(progress, "__exit__"):
                    progress.__exit__(None, None, None)
                if model is not None:
                    await model.aclose()
            outcome.results.append(result)
            if on_done:
                on_done(result)
    finally:
        for j in judges:
            await j.aclose()
    return outcome


def run_study(study: Study, store: Store, **kwargs: Any) -> StudyOutcome:
    """Synchronous `run_study_async`."""
    return asyncio.run(run_study_async(study, store, **kwargs))


@dataclass(frozen=True)
class ModelStatus:
    """How far one model of a study has got, read from the store."""

    name: str
    spec: str
    items: int
    responses: int
    judged: dict[str, int]
    """Judge name -> judgements stored (of the responses)."""
    run_id: str | None
    note: str = ""

    @property
    def done(self) -> bool:
        return (
            self.run_id is not None
            and self.responses == self.items
            and all(n == self.responses for n in self.judged.values())
        )


def _identity(m: StudyModel) -> str:
    """The model's identity without loading weights (hf:/vllm: fingerprint files; openai: needs nothing)."""
    return model_identity(m.model, prompt_format=m.prompt_format, **m.options)


def _judge_identity(j: StudyJudge) -> str:
    judge = load_judge(j.spec, **j.options)
    return judge.identity


def study_status(study: Study, store: Store) -> list[ModelStatus]:
    """Per model: items, responses and judgements stored so far (no model or judge is called)."""
    items: list[Item] = study.items.load()
    digest = items_digest((it.id, it.request, it.policy) for it in items)
    judges: list[tuple[str, str | None]] = []
    for j in study.judges:
        try:
            judges.append((j.name, _judge_identity(j)))
        except UserError:
            judges.append((j.name, None))
    out = []
    for m in study.models:
        try:
            identity = _identity(m)
        except (UserError, OSError, ValueError) as exc:
            out.append(ModelStatus(m.name, redact_spec(m.spec), len(items), 0, {}, None, f"not started: {exc}"))
            continue
        run_id = store.find_run(model_identity=identity, settings=m.settings.to_dict(), items_digest_=digest)
        if run_id is None:
            out.append(
                ModelStatus(m.name, redact_spec(m.spec), len(items), 0, {n: 0 for n, _ in judges}, None, "not started")
            )
            continue
        rows = store.run_rows(run_id, judges[0][1] if judges and judges[0][1] else None)
        responses = sum(r.response is not None for r in rows)
        judged = {}
        for name, identity_j in judges:
            keys = (
                [
                    JudgeCase(r.request, r.response, r.policy).cache_key(identity_j)
                    for r in rows
                    if r.response is not None
                ]
                if identity_j
                else []
            )
            judged[name] = len(store.has_judgements(keys))
        out.append(ModelStatus(m.name, redact_spec(m.spec), len(items), responses, judged, run_id))
    return out
