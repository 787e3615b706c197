"""respond -> judge -> summarise: an evaluation run, resumable, with progress.

`plan_run` turns items + settings into a run in the store (a snapshot of the items and the cache key
of each response). The stages (`medsafetybench.evaluation.stages`) ask the model only for responses the store
does not hold and each judge only for judgements it does not hold, streamed into each other;
`respond_stage` and `judge_stage` run one stage alone; `rejudge_run` adds judges to a finished run
without its model (`medsafety rejudge`); `summarise_run` reads the store. Each stage
reads its inputs from the store and writes its outputs there, so a killed run resumes with only the
missing calls.

What a run is: the run key is (model identity, settings, items, kind), hashed by `run_id_for`; judges
are not part of it and attach to the run (the first is its primary judge). Asking for the same
evaluation again, with any judges, finds the same run; a different `name` for it is kept as an alias
(`Store.add_run_name`), never a rename.

An API model's identity is its name and URL (and `--model-version`), which say nothing about the
weights behind them, so `check_model_server` compares what the server says about itself with what the
store recorded for the same identity before any run is planned: its `/v1/models` entry, and the
`system_fingerprint` of one 1-token reply when stored responses carry one (`stages` compares every new
reply too). A change is refused with a `UserError` rather than mixed with, or answered from, the old
results (docs/models.md, "What identifies an API model").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.schema import Item
from ..errors import UserError
from ..judging.base import Judge, JudgeSpec
from ..metrics import ScoredItem, Summary, summarise
from ..metrics.refusal import DETECTOR_VERSION as REFUSAL_DETECTOR
from ..metrics.refusal import is_refusal
from ..models.base import ChatModel, ChatRequest, GenerationConfig
from ..principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from ..store import RunRow, Store
from ..store.migrations import items_digest
from .stages import Progress, StageReport, run_stages


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
    h.update(
        json.dumps({"model": model_identity, "settings": settings.to_dict(), "kind": kind}, sort_keys=True).encode()
    )
    for it in items:
        h.update(json.dumps([it.id, it.request, it.policy], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def plan_run(
    store: Store,
    items: Sequence[Item],
    *,
    model_spec: str,
    model_identity: str,
    judge_identity: str | None,
    settings: EvalSettings,
    judge_spec: JudgeSpec | None = None,
    name: str | None = None,
    kind: str = "safety",
    provenance: dict | None = None,
    notes: list[str] | None = None,
) -> str:
    """Create (or find) the run for this evaluation, attach the judge, and return the run's id. A run that
    asked this model the same items under the same settings is reused, whatever its judges; a new `name`
    for it becomes an alias (a line saying so is appended to `notes`)."""
    digest = items_digest((it.id, it.request, it.policy) for it in items)
    run_id = store.find_run(
        model_identity=model_identity,
        settings=settings.to_dict(),
        items_digest_=digest,
        kind=kind,
        prefer_judge=judge_identity,
    )
    if run_id is None:
        run_id = run_id_for(model_identity, settings, items, kind)
    snapshot = [{**it.to_dict(), "response_key": settings.request_for(it).cache_key(model_identity)} for it in items]
    created = store.create_run(
        run_id,
        model_spec=model_spec,
        model_identity=model_identity,
        judge_identity=judge_identity,
        judge_spec=judge_spec,
        settings=settings.to_dict(),
        items=snapshot,
        name=name,
        kind=kind,
        provenance=provenance,
    )
    if name and not created and store.add_run_name(run_id, name) == "alias" and notes is not None:
        notes.append(
            f"this evaluation is run {run_id}, already named '{store.run(run_id).name}': '{name}' is "
            "kept as an alias of it (a run is one model, item set and settings; judges attach to it)"
        )
    return run_id


def model_changed(spec: str, what: str, *, judge: bool = False) -> UserError:
    """The refusal when the server behind a model spec changed (`what` says how)."""
    fix = (
        "serve the new weights under another model name, or use another --project"
        if judge
        else 'give --model-version NAME (in a study: model_version = "NAME") to evaluate it as a new version '
        "of the model, or use another --project"
    )
    return UserError(
        f"{spec}: the server no longer describes the model as it did when this project stored its "
        f"results ({what}); its weights may have changed, and old and new results would mix under "
        f"one identity: {fix}"
    )


async def check_model_server(store: Store, model: object, spec: str, *, judge: bool = False) -> None:
    """Refuse to go on when the server behind `model` describes it otherwise than the store recorded.

    Args:
        store: the project store (the first description seen is recorded in it).
        model: a loaded model; checked when it has `describe_server` (the `openai:` backend).
        spec: the secret-free spec, for the message.
        judge: the model is a judge's (the advice differs).

    Raises:
        UserError: the `/v1/models` entry changed, or a reply's `system_fingerprint` is none of those the
            stored responses carry.
    """
    describe = getattr(model, "describe_server", None)
    if describe is None:
        return
    identity = model.identity  # type: ignore[attr-defined]
    now = await describe()
    if now:
        before = store.server_description(identity)
        if before is not None and before != now:
            changes = ", ".join(
                f"{k} {before.get(k, '-')} -> {now.get(k, '-')}"
                for k in sorted({*before, *now})
                if before.get(k) != now.get(k)
            )
            raise model_changed(spec, f"its /v1/models entry: {changes}", judge=judge)
        store.record_server(identity, now)
    stored = store.response_fingerprints(identity)
    read = getattr(model, "read_fingerprint", None)
    if stored and read is not None:
        fingerprint = await read()
        if fingerprint is not None and fingerprint not in stored:
            raise model_changed(spec, f"system_fingerprint {', '.join(sorted(stored))} -> {fingerprint}", judge=judge)


async def respond_stage(store: Store, run_id: str, model: ChatModel, progress: Progress | None = None) -> StageReport:
    """Ask the model for every response of the run that the store does not hold yet (no judging)."""
    return (await run_stages(store, run_id, model, [], progress)).responses


async def judge_stage(
    store: Store, run_id: str, judge: Judge, progress: Progress | None = None, *, retry_unscored: bool = False
) -> StageReport:
    """Judge every stored response of the run that has no judgement from this judge yet (attaching the
    judge to the run if it is new to it)."""
    out = await run_stages(store, run_id, None, [judge], progress, retry_unscored=retry_unscored)
    return out.judgements[judge.identity]


def rejudge_run(
    store: Store,
    run_id: str,
    judges: Sequence[Judge],
    progress: Progress | None = None,
    *,
    retry_unscored: bool = False,
) -> dict[str, StageReport]:
    """Judge a finished run's stored responses with more judges, without its model (nothing is asked of
    it, so it need not be reachable): each judge is attached to the run and asked only for judgements the
    store does not hold (cached by content like any judgement). Closes the judges.

    Args:
        store: the project store.
        run_id: the run (its responses are read from the store; items without one are skipped).
        judges: the judges to add.
        progress: progress sink.
        retry_unscored: ask these judges again where they left a case unscored.

    Returns:
        What each judge did, by judge identity.
    """

    async def go() -> dict[str, StageReport]:
        try:
            out = await run_stages(store, run_id, None, list(judges), progress, retry_unscored=retry_unscored)
            return out.judgements
        finally:
            for j in judges:
                await j.aclose()

    return asyncio.run(go())


def refusal_flags(responses: Sequence[str | None]) -> list[bool | None]:
    """The refusal detector's verdict per response (None where there is no response; an empty answer is
    not a refusal)."""
    texts = [t for t in responses if t is not None]
    flags = iter(is_refusal(texts))
    return [None if t is None else (next(flags) and bool(t.strip())) for t in responses]


def scored_items(rows: Sequence[RunRow]) -> list[ScoredItem]:
    refused = refusal_flags([r.response for r in rows])
    return [
        ScoredItem(
            principle=r.principle,
            source=r.source,
            has_response=r.response is not None,
            judged=r.judged,
            score=r.score,
            harmful=r.harmful,
            refused=f,
            categories=r.categories,
            tokens={
                "response_prompt": r.prompt_tokens or 0,
                "response_completion": r.completion_tokens or 0,
                "judge_prompt": r.judge_prompt_tokens or 0,
                "judge_completion": r.judge_completion_tokens or 0,
            },
        )
        for r, f in zip(rows, refused, strict=True)
    ]


def summarise_run(store: Store, run_id: str, *, judge_identity: str | None = None, seed: int = 0) -> Summary:
    """The summary of a run under one judge (its primary judge unless given)."""
    return summarise(scored_items(store.run_rows(run_id, judge_identity)), seed=seed, refusal_detector=REFUSAL_DETECTOR)


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
    notes: list[str] = field(default_factory=list)
    """Lines for the user (e.g. a name kept as an alias)."""


def _judges(judges: Judge | Sequence[Judge]) -> list[Judge]:
    out = [judges] if isinstance(judges, Judge) else list(judges)
    if not out:
        raise ValueError("an evaluation needs at least one judge")
    return out


async def evaluate(
    store: Store,
    items: Sequence[Item],
    model: ChatModel,
    judges: Judge | Sequence[Judge],
    *,
    model_spec: str,
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
    retry_unscored: bool = False,
    name: str | None = None,
    provenance: dict | None = None,
    sequential: bool = False,
) -> EvalOutcome:
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
    sent = {id(m): _sent(m) for m in (model, *(getattr(j, "model", None) for j in judges))}
    await check_model_server(store, model, model_spec)
    for j in judges:
        judge_model = getattr(j, "model", None)
        if judge_model is not None:
            await check_model_server(store, judge_model, j.identity, judge=True)
    notes: list[str] = []
    run_id = plan_run(
        store,
        items,
        model_spec=model_spec,
        model_identity=model.identity,
        judge_identity=judges[0].identity,
        judge_spec=getattr(judges[0], "spec", None),
        settings=settings,
        name=name,
        provenance=provenance,
        notes=notes,
    )
    if sequential:
        first = await run_stages(store, run_id, model, [], progress)
        out = await run_stages(store, run_id, None, judges, progress, retry_unscored=retry_unscored)
        out.responses = first.responses
    else:
        out = await run_stages(store, run_id, model, judges, progress, retry_unscored=retry_unscored)
    out.responses.attempts = _attempts(model, sent)
    for j in judges:
        out.judgements[j.identity].attempts = _attempts(getattr(j, "model", None), sent)
    total = StageReport()
    for report in out.judgements.values():
        total += report
    summaries = {j.identity: summarise_run(store, run_id, judge_identity=j.identity) for j in judges}
    return EvalOutcome(run_id, summaries[judges[0].identity], out.responses, total, summaries, out.judgements, notes)


def _sent(model: object) -> int | None:
    """HTTP requests a backend has sent so far, when it counts them (`openai:`)."""
    n = getattr(model, "requests_sent", None)
    return n if isinstance(n, int) else None


def _attempts(model: object, before: dict[int, int | None]) -> int | None:
    now, then = _sent(model), before.get(id(model))
    return None if now is None or then is None else now - then


def run_evaluation(
    store: Store,
    items: Sequence[Item],
    model: ChatModel,
    judges: Judge | Sequence[Judge],
    *,
    model_spec: str,
    settings: EvalSettings | None = None,
    progress: Progress | None = None,
    retry_unscored: bool = False,
    name: str | None = None,
    provenance: dict | None = None,
) -> EvalOutcome:
    """Synchronous entry point: `evaluate`, then close the model and the judges whatever happens."""
    judges = _judges(judges)

    async def go() -> EvalOutcome:
        try:
            return await evaluate(
                store,
                items,
                model,
                judges,
                model_spec=model_spec,
                settings=settings,
                progress=progress,
                retry_unscored=retry_unscored,
                name=name,
                provenance=provenance,
            )
        finally:
            await model.aclose()
            for j in judges:
                await j.aclose()

    return asyncio.run(go())
