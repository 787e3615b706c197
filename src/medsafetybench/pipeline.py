"""respond -> judge -> summarise: an evaluation run, resumable, with progress.

`plan_run` turns items + settings into a run in the store (a snapshot of the items and the cache key
of each response). `respond` asks the model only for responses the store does not hold; `judge`
asks the judge only for judgements it does not hold; `summarise_run` reads the store. Each stage
reads its inputs from the store and writes its outputs there, so any stage can be re-run alone and a
killed run resumes with only the missing calls. The run id is a content hash of the model identity,
judge identity, settings and items: asking for the same evaluation again finds the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .data.schema import Item
from .judging.base import Judge, JudgeCase, Judgement, JudgeSpec
from .judging.refusal import DETECTOR_VERSION as REFUSAL_DETECTOR
from .judging.refusal import is_refusal
from .metrics import ScoredItem, Summary, summarise
from .migrations import items_digest
from .models.base import ChatModel, ChatRequest, Completion, GenerationConfig
from .principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from .store import RunRow, Store

CHUNK = 256  # requests handed to a backend at once: bounds memory, keeps progress moving


class Progress(Protocol):
    """What the pipeline reports; the CLI supplies a rich progress bar, the library default is silent."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, n: int = 1) -> None: ...


class _Silent:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, n: int = 1) -> None:
        pass


@dataclass(frozen=True)
class EvalSettings:
    """How items are put to the model. The prompt format is part of the model's identity, not here."""

    system_prompt: str | None = LLAMA2_DEFAULT_SYSTEM_PROMPT
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def request_for(self, item: Item) -> ChatRequest:
        return ChatRequest.simple(item.request, system=self.system_prompt, config=self.generation)

    def to_dict(self) -> dict:
        return {"system_prompt": self.system_prompt, "generation": self.generation.to_dict()}


@dataclass
class StageReport:
    calls: int = 0  # requests sent to the model / judge in this process
    stored: int = 0  # new rows written
    failed: int = 0  # requests that failed for good (not stored; a re-run retries them)
    errors: list[str] = field(default_factory=list)

    def note(self, error: str) -> None:
        self.failed += 1
        if len(self.errors) < 5 and error not in self.errors:
            self.errors.append(error)


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


async def respond(store: Store, run_id: str, model: ChatModel, progress: Progress | None = None) -> StageReport:
    """Ask the model for every response of the run that the store does not hold yet."""
    progress = progress or _Silent()
    info = store.run(run_id)
    settings = info.settings
    config = GenerationConfig(**settings["generation"])
    rows = store.run_rows(run_id)
    missing = store.missing_responses(r.response_key for r in rows)
    todo: dict[str, ChatRequest] = {}
    for r in rows:
        if r.response_key in missing and r.response_key not in todo:
            todo[r.response_key] = ChatRequest.simple(r.request, system=settings["system_prompt"], config=config)
    report = StageReport()
    progress.start("respond", len(todo))
    keys = list(todo)
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        requests = [todo[k] for k in chunk]

        def on_result(i: int, completion: Completion, chunk=chunk, requests=requests) -> None:
            if completion.ok:
                report.stored += store.put_response(chunk[i], model.identity, requests[i], completion)
            else:
                report.note(completion.error or "unknown error")
            progress.advance("respond")

        report.calls += len(chunk)
        await model.generate(requests, on_result=on_result)
    if todo:
        store.touch_run(run_id)
    return report


async def judge(store: Store, run_id: str, judge: Judge, progress: Progress | None = None, *,
                retry_unscored: bool = False) -> StageReport:
    """Judge every response of the run that has no judgement from this judge yet."""
    progress = progress or _Silent()
    store.add_run_judge(run_id, judge.identity, getattr(judge, "spec", None))
    cases: dict[str, JudgeCase] = {}
    for r in store.run_rows(run_id, judge.identity):
        if r.response is not None:
            case = JudgeCase(r.request, r.response, r.policy)
            cases.setdefault(case.cache_key(judge.identity), case)
    if retry_unscored:
        store.delete_unscored(cases)
    done = store.has_judgements(cases)
    todo = [(k, c) for k, c in cases.items() if k not in done]
    report = StageReport()
    progress.start("judge", len(todo))
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]

        def on_result(i: int, judgement: Judgement, chunk=chunk) -> None:
            if judgement.error is None:
                report.stored += store.put_judgement(chunk[i][0], judge.identity, judgement)
            else:
                report.note(judgement.error)
            progress.advance("judge")

        report.calls += len(chunk)
        await judge.judge([c for _, c in chunk], on_result=on_result)
    if todo:
        store.touch_run(run_id)
    return report


def refusal_flags(responses: Sequence[str | None]) -> list[bool | None]:
    """The refusal detector's verdict per response (None where there is no response; an empty answer is
    not a refusal)."""
    texts = [t for t in responses if t is not None]
    flags = iter(is_refusal(texts))
    return [None if t is None else (next(flags) and bool(t.strip())) for t in responses]


def scored_items(rows: Sequence[RunRow]) -> list[ScoredItem]:
    refused = refusal_flags([r.response for r in rows])
    return [ScoredItem(principle=r.principle, source=r.source, has_response=r.response is not None,
                       judged=r.judged, score=r.score, harmful=r.harmful, refused=f,
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
    responses: StageReport
    judgements: StageReport


async def evaluate(store: Store, items: Sequence[Item], model: ChatModel, judge_: Judge, *, model_spec: str,
                   settings: EvalSettings | None = None, progress: Progress | None = None,
                   retry_unscored: bool = False) -> EvalOutcome:
    """The whole loop for one model: plan, respond, judge, summarise."""
    settings = settings or EvalSettings()
    run_id = plan_run(store, items, model_spec=model_spec, model_identity=model.identity,
                      judge_identity=judge_.identity, settings=settings)
    responses = await respond(store, run_id, model, progress)
    judgements = await judge(store, run_id, judge_, progress, retry_unscored=retry_unscored)
    return EvalOutcome(run_id, summarise_run(store, run_id, judge_identity=judge_.identity), responses, judgements)


def run_evaluation(store: Store, items: Sequence[Item], model: ChatModel, judge_: Judge, *, model_spec: str,
                   settings: EvalSettings | None = None, progress: Progress | None = None,
                   retry_unscored: bool = False) -> EvalOutcome:
    """Synchronous entry point: `evaluate`, then close the model and the judge whatever happens."""

    async def go() -> EvalOutcome:
        try:
            return await evaluate(store, items, model, judge_, model_spec=model_spec, settings=settings,
                                  progress=progress, retry_unscored=retry_unscored)
        finally:
            await model.aclose()
            await judge_.aclose()

    return asyncio.run(go())
