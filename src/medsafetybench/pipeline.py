"""respond -> judge -> summarise: an evaluation run, resumable, with progress.

`plan_run` turns items + settings into a run in the store (a snapshot of the items and the cache key
of each response). The stages (`medsafetybench.stages`) ask the model only for responses the store
does not hold and each judge only for judgements it does not hold, streamed into each other;
`respond_stage` and `judge_stage` run one stage alone; `summarise_run` reads the store. Each stage
reads its inputs from the store and writes its outputs there, so a killed run resumes with only the
missing calls. The run id is a content hash of the model identity, settings and items (judges attach
to a run); asking for the same evaluation again finds the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from .data.schema import Item
from .judging.base import Judge, JudgeSpec
from .judging.refusal import DETECTOR_VERSION as REFUSAL_DETECTOR
from .judging.refusal import is_refusal
from .metrics import ScoredItem, Summary, summarise
from .migrations import items_digest
from .models.base import ChatModel, ChatRequest, GenerationConfig
from .principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from .stages import Progress, StageReport, run_stages
from .store import RunRow, Store


@dataclass(frozen=True)
class EvalSettings:
    """How items are put to the model. The prompt format is part of the model's identity, not here."""

    system_prompt: str | None = LLAMA2_DEFAULT_SYSTEM_PROMPT
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def request_for(self, item: Item) -> ChatRequest:
        return ChatRequest.simple(item.request, system=self.system_prompt, config=self.generation)

    def to_dict(self) -> dict:
        return {"system_prompt": self.system_prompt, "generation": self.generation.to_dict()}


def run_id_for(model_identity: str, settings: EvalSettings, items: Sequence[Item], kind: str = "safety") -> str:
    """A run's id: a content hash of the model identity, the settings and the items (in order). Judges are
    not part of it: any number of judges attach to one run."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": model_identity, "settings": settings.to_dict(), "kind": kind},
                        sort_keys=True).encode())
    for it in items:
        h.update(json.dumps([it.id, it.request, it.policy], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def plan_run(store: Store, items: Sequence[Item], *, model_spec: str, model_identity: str,
             judge_identity: str | None, settings: EvalSettings, judge_spec: JudgeSpec | None = None,
             name: str | None = None, kind: str = "safety", provenance: dict | None = None) -> str:
    """Create (or find) the run for this evaluation, attach the judge, and return the run's id. A run that
    asked this model the same items under the same settings is reused, whatever its judges."""
    digest = items_digest((it.id, it.request, it.policy) for it in items)
    run_id = store.find_run(model_identity=model_identity, settings=settings.to_dict(), items_digest_=digest,
                            kind=kind, prefer_judge=judge_identity)
    if run_id is None:
        run_id = run_id_for(model_identity, settings, items, kind)
    snapshot = [{**it.to_dict(), "response_key": settings.request_for(it).cache_key(model_identity)}
                for it in items]
    store.create_run(run_id, model_spec=model_spec, model_identity=model_identity, judge_identity=judge_identity,
                     judge_spec=judge_spec, settings=settings.to_dict(), items=snapshot, name=name, kind=kind,
                     provenance=provenance)
    return run_id


async def respond_stage(store: Store, run_id: str, model: ChatModel,
                        progress: Progress | None = None) -> StageReport:
    """Ask the model for every response of the run that the store does not hold yet (no judging)."""
    return (await run_stages(store, run_id, model, [], progress)).responses


async def judge_stage(store: Store, run_id: str, judge: Judge, progress: Progress | None = None, *,
                      retry_unscored: bool = False) -> StageReport:
    """Judge every stored response of the run that has no judgement from this judge yet (attaching the
    judge to the run if it is new to it)."""
    out = await run_stages(store, run_id, None, [judge], progress, retry_unscored=retry_unscored)
    return out.judgements[judge.identity]


def refusal_flags(responses: Sequence[str | None]) -> list[bool | None]:
    """The refusal detector's verdict per response (None where there is no response; an empty answer is
    not a refusal)."""
    texts = [t for t in responses if t is not None]
    flags = iter(is_refusal(texts))
    return [None if t is None else (next(flags) and bool(t.strip())) for t in responses]


def scored_items(rows: Sequence[RunRow]) -> list[ScoredItem]:
    refused = refusal_flags([r.response for r in rows])
    return [ScoredItem(principle=r.principle, source=r.source, has_response=r.response is not None,
                       judged=r.judged, score=r.score, harmful=r.harmful, refused=f, categories=r.categories,
                       tokens={"response_prompt": r.prompt_tokens or 0,
                               "response_completion": r.completion_tokens or 0,
                               "judge_prompt": r.judge_prompt_tokens or 0,
                               "judge_completion": r.judge_completion_tokens or 0})
            for r, f in zip(rows, refused, strict=True)]


def summarise_run(store: Store, run_id: str, *, judge_identity: str | None = None, seed: int = 0) -> Summary:
    """The summary of a run under one judge (its primary judge unless given)."""
    return summarise(scored_items(store.run_rows(run_id, judge_identity)), seed=seed,
                     refusal_detector=REFUSAL_DETECTOR)


@dataclass
class EvalOutcome:
    run_id: str
    summary: Summary
    """Under the first judge."""
    responses: StageReport
    judgements: StageReport
    """All judges together."""
    summaries: dict[str, Summary] = field(default_factory=dict)
    """One summary per judge identity, in the order the judges were given."""
    by_judge: dict[str, StageReport] = field(default_factory=dict)


def _judges(judges: Judge | Sequence[Judge]) -> list[Judge]:
    out = [judges] if isinstance(judges, Judge) else list(judges)
    if not out:
        raise ValueError("an evaluation needs at least one judge")
    return out


async def evaluate(store: Store, items: Sequence[Item], model: ChatModel, judges: Judge | Sequence[Judge], *,
                   model_spec: str, settings: EvalSettings | None = None, progress: Progress | None = None,
                   retry_unscored: bool = False, name: str | None = None,
                   provenance: dict | None = None, sequential: bool = False) -> EvalOutcome:
    """The whole loop for one model: plan the run, respond and judge (streamed), summarise.

    Args:
        store: the project store.
        items: the benchmark items to ask.
        model: the model under evaluation.
        judges: one judge or several; the first is the run's primary judge.
        model_spec: the secret-free spec string recorded with the run.
        settings: system prompt and generation settings (default: the paper's).
        progress: progress sink.
        retry_unscored: ask the judges again where they left a case unscored.
        name: a short name for the run.
        provenance: versions and data digests recorded with the run.
        sequential: respond first, then judge the stored responses (batch mode: one set of batches per
            stage instead of one per streamed slice).

    Returns:
        The run id, one summary per judge and what each stage did.
    """
    judges = _judges(judges)
    settings = settings or EvalSettings()
    run_id = plan_run(store, items, model_spec=model_spec, model_identity=model.identity,
                      judge_identity=judges[0].identity, judge_spec=getattr(judges[0], "spec", None),
                      settings=settings, name=name, provenance=provenance)
    if sequential:
        first = await run_stages(store, run_id, model, [], progress)
        out = await run_stages(store, run_id, None, judges, progress, retry_unscored=retry_unscored)
        out.responses = first.responses
    else:
        out = await run_stages(store, run_id, model, judges, progress, retry_unscored=retry_unscored)
    total = StageReport()
    for report in out.judgements.values():
        total += report
    summaries = {j.identity: summarise_run(store, run_id, judge_identity=j.identity) for j in judges}
    return EvalOutcome(run_id, summaries[judges[0].identity], out.responses, total, summaries, out.judgements)


def run_evaluation(store: Store, items: Sequence[Item], model: ChatModel, judges: Judge | Sequence[Judge], *,
                   model_spec: str, settings: EvalSettings | None = None, progress: Progress | None = None,
                   retry_unscored: bool = False, name: str | None = None,
                   provenance: dict | None = None) -> EvalOutcome:
    """Synchronous entry point: `evaluate`, then close the model and the judges whatever happens."""
    judges = _judges(judges)

    async def go() -> EvalOutcome:
        try:
            return await evaluate(store, items, model, judges, model_spec=model_spec, settings=settings,
                                  progress=progress, retry_unscored=retry_unscored, name=name,
                                  provenance=provenance)
        finally:
            await model.aclose()
            for j in judges:
                await j.aclose()

    return asyncio.run(go())
