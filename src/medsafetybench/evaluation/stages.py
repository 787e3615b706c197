"""The two stages of an evaluation, respond and judge, streamed into each other.

`run_stages` asks the model for every response a run lacks and hands each one to every judge the
moment it is stored, through one queue per judge, so an evaluation takes about as long as its slowest
stage instead of the sum of both. Judgements that are missing for responses already stored are queued
at the start. The model is fed in slices (`stream_slice` requests, up to `stream_window` slices in
flight, so one slice's stragglers overlap the next slice); a new slice starts only while each judge's
backlog is under `max_backlog`, so the slowest stage sets the pace and memory stays bounded. Judge
workers (`stream_workers` per judge) take whatever is queued, up to `stream_batch` cases, per call.

Backends and judges tune this with optional attributes (`stream_slice`, `stream_window` on a model;
`stream_workers`, `stream_batch` on a judge); a remote engine (Ray replicas) is just a model whose
`on_result` fires as each replica's share finishes. The contract of the store is unchanged: every
result is written in its own transaction as it arrives, so a run killed at any instant resumes with
only the missing calls, and no response or judgement is asked for twice in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UserError
from ..judging.base import Judge, JudgeCase, Judgement
from ..models.base import ChatModel, ChatRequest, Completion, GenerationConfig
from ..models.concurrency import gather_or_cancel
from ..store import Store

DEFAULT_SLICE = 256
DEFAULT_WINDOW = 2
DEFAULT_JUDGE_WORKERS = 4
DEFAULT_JUDGE_BATCH = 64


class Progress(Protocol):
    """What the stages report; the CLI supplies rich progress bars, the library default is silent."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, n: int = 1) -> None: ...


class Silent:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, n: int = 1) -> None:
        pass


@dataclass
class StageReport:
    """What one stage did in this process."""

    calls: int = 0
    """Requests asked of the model / judge (one per response or judgement wanted, whatever became of it)."""
    stored: int = 0
    """New rows written."""
    failed: int = 0
    """Requests that failed for good (not stored; a re-run retries them)."""
    errors: list[str] = field(default_factory=list)
    attempts: int | None = None
    """HTTP requests the server saw for them, retries included (None: the backend does not count them)."""

    @property
    def answered(self) -> int:
        """Requests that got an answer (stored, or already stored by a twin request)."""
        return self.calls - self.failed

    def describe(self) -> str:
        """`N requests, N answered, N failed (N HTTP attempts)` for people."""
        # no live attempts at all (a cached or batched stage): say nothing rather than "0 HTTP attempts"
        tries = f" ({self.attempts} HTTP attempts)" if self.attempts else ""
        return f"{self.calls} requests, {self.answered} answered, {self.failed} failed{tries}"

    def to_dict(self) -> dict:
        """Requests, answered, failed and attempts, for `--json`."""
        return {"requests": self.calls, "answered": self.answered, "failed": self.failed, "attempts": self.attempts}

    def note(self, error: str) -> None:
        self.failed += 1
        if len(self.errors) < 5 and error not in self.errors:
            self.errors.append(error)

    def __iadd__(self, other: StageReport) -> StageReport:
        self.calls += other.calls
        self.stored += other.stored
        self.failed += other.failed
        if other.attempts is not None:
            self.attempts = (self.attempts or 0) + other.attempts
        self.errors += [e for e in other.errors if e not in self.errors][: max(0, 5 - len(self.errors))]
        return self


@dataclass
class StagesOutcome:
    responses: StageReport
    judgements: dict[str, StageReport]
    """One report per judge identity."""


def _stage_name(judges: Sequence[Judge], judge: Judge) -> str:
    return "judge" if len(judges) == 1 else f"judge {judges.index(judge) + 1}"


class _JudgeLane:
    """One judge's queue, its workers and its bookkeeping."""

    def __init__(self, store: Store, judge: Judge, stage: str, progress: Progress) -> None:
        self.store, self.judge, self.stage, self.progress = store, judge, stage, progress
        self.queue: asyncio.Queue[tuple[str, JudgeCase] | None] = asyncio.Queue()
        self.seen: set[str] = set()
        self.report = StageReport()
        self.workers = max(1, int(getattr(judge, "stream_workers", DEFAULT_JUDGE_WORKERS)))
        self.batch = max(1, int(getattr(judge, "stream_batch", DEFAULT_JUDGE_BATCH)))

    def offer(self, case: JudgeCase) -> None:
        """Queue a case for a response that just arrived, unless it is queued or judged already (the same
        request and response may have been judged in another run)."""
        key = case.cache_key(self.judge.identity)
        if key in self.seen:
            return
        self.seen.add(key)
        if self.store.has_judgements([key]):
            self.progress.advance(self.stage)
            return
        self.queue.put_nowait((key, case))

    async def work(self) -> None:
        while True:
            first = await self.queue.get()
            if first is None:
                self.queue.put_nowait(None)  # let the other workers see the end too
                return
            batch = [first]
            while len(batch) < self.batch and not self.queue.empty():
                nxt = self.queue.get_nowait()
                if nxt is None:
                    self.queue.put_nowait(None)
                    break
                batch.append(nxt)
            self.report.calls += len(batch)

            def on_result(i: int, judgement: Judgement, batch: list[tuple[str, JudgeCase]] = batch) -> None:
                if judgement.error is None:
                    self.report.stored += self.store.put_judgement(batch[i][0], self.judge.identity, judgement)
                else:
                    self.report.note(judgement.error)
                self.progress.advance(self.stage)

            await self.judge.judge([c for _, c in batch], on_result=on_result)


async def run_stages(
    store: Store,
    run_id: str,
    model: ChatModel | None,
    judges: Sequence[Judge],
    progress: Progress | None = None,
    *,
    retry_unscored: bool = False,
    max_backlog: int = 1024,
) -> StagesOutcome:
    """Respond (when `model` is given) and judge (with every judge in `judges`) one run, streamed.

    Args:
        store: the project store; the run must exist (`plan_run`).
        run_id: the run.
        model: the model that answers, or None to judge only the responses already stored.
        judges: judges to apply; each is attached to the run.
        progress: progress sink (one bar per stage).
        retry_unscored: forget these judges' unscored judgements of the run and ask again.
        max_backlog: a new slice of model requests waits while any judge has more cases queued than this.

    Returns:
        What each stage did in this call.
    """
    progress = progress or Silent()
    for judge in judges:
        store.add_run_judge(run_id, judge.identity, getattr(judge, "spec", None))
    info = store.run(run_id)
    rows = store.run_rows(run_id, info.judge_identity)
    lanes = [_JudgeLane(store, j, _stage_name(judges, j), progress) for j in judges]

    # Responses still missing, one request per distinct key.
    settings = info.settings
    config = GenerationConfig(**settings["generation"])
    missing = store.missing_responses(r.response_key for r in rows) if model is not None else set()
    todo: dict[str, ChatRequest] = {}
    waiting: dict[str, list[JudgeCase]] = {}  # response key -> cases to judge once it exists
    for r in rows:
        if r.response_key in missing:
            todo.setdefault(
                r.response_key, ChatRequest.simple(r.request, system=settings["system_prompt"], config=config)
            )
            waiting.setdefault(r.response_key, []).append(JudgeCase(r.request, "", r.policy))

    responses = StageReport()
    if model is not None:  # the first stage's bar first: respond above judge
        progress.start("respond", len(todo))

    # Judgements missing for responses that exist: queued now.
    for lane in lanes:
        cases = {}
        for r in rows:
            if r.response is not None:
                case = JudgeCase(r.request, r.response, r.policy)
                cases.setdefault(case.cache_key(lane.judge.identity), case)
        if retry_unscored:
            store.delete_unscored(cases)
        done = store.has_judgements(cases)
        lane.seen.update(done)
        expected = len(cases) - len(done) + len(todo)
        progress.start(lane.stage, expected)
        for key, case in cases.items():
            if key not in done:
                lane.seen.add(key)
                lane.queue.put_nowait((key, case))

    # an API server's fingerprints of this model's stored responses: a reply with another one is not mixed in
    fingerprints = store.response_fingerprints(model.identity) if model is not None and todo else set()
    keys = list(todo)
    slice_size = max(1, int(getattr(model, "stream_slice", DEFAULT_SLICE)))
    window = max(1, int(getattr(model, "stream_window", DEFAULT_WINDOW)))
    next_slice = 0
    slice_lock = asyncio.Lock()

    def on_response(chunk: list[str], i: int, completion: Completion) -> None:
        key = chunk[i]
        fingerprint = completion.system_fingerprint
        if completion.ok and fingerprint and fingerprints and fingerprint not in fingerprints:
            raise UserError(
                f"{model.identity}: the server now replies with system_fingerprint {fingerprint}, "
                f"the stored responses carry {', '.join(sorted(fingerprints))}: the model or its "
                "serving changed mid-run; give --model-version NAME to evaluate it as a new version, "
                "or use another --project"
            )
        if completion.ok:
            responses.stored += store.put_response(key, model.identity, todo[key], completion)
            for stub in waiting.get(key, ()):
                case = JudgeCase(stub.request, completion.text, stub.policy)
                for lane in lanes:
                    lane.offer(case)
        else:
            responses.note(completion.error or "unknown error")
        progress.advance("respond")

    async def feeder() -> None:
        nonlocal next_slice
        while True:
            async with slice_lock:
                while lanes and max(lane.queue.qsize() for lane in lanes) > max_backlog:
                    await asyncio.sleep(0.01)
                start = next_slice
                if start >= len(keys):
                    return
                next_slice += slice_size
            chunk = keys[start : start + slice_size]
            responses.calls += len(chunk)
            await model.generate([todo[k] for k in chunk], on_result=lambda i, c, chunk=chunk: on_response(chunk, i, c))

    async def respond_then_close() -> None:
        try:
            if model is not None and keys:
                await asyncio.gather(*(feeder() for _ in range(window)))
        finally:
            for lane in lanes:
                lane.queue.put_nowait(None)

    workers = [lane.work() for lane in lanes for _ in range(lane.workers)]
    await gather_or_cancel([asyncio.ensure_future(c) for c in (respond_then_close(), *workers)])
    if todo or any(lane.report.calls for lane in lanes):
        store.touch_run(run_id)
    return StagesOutcome(responses, {lane.judge.identity: lane.report for lane in lanes})
