"""Batch mode: a `ChatModel` that sends its requests through the provider's batch API instead of live calls.

`BatchChatModel(model, store)` wraps an `openai:` or `anthropic:` model under the same identity, so its
results are stored under exactly the keys live calls use (batch and live results are interchangeable,
and a re-run makes no calls). `generate(requests)`:

1. **resumes** every open batch in the store that holds one of the requests (a process killed while a
   batch ran, even by SIGKILL): it polls that batch instead of submitting the requests again;
2. **submits** the rest: request lines (custom id = the request's content key, `ChatRequest.cache_key`)
   split at the provider's limits (requests and bytes per batch), each batch and its requests written to
   the store before the upload (`BatchStore.prepare`), its provider id right after;
3. **polls** the open batches every `poll_interval` seconds (`on_event` gets requests done / failed and
   the elapsed time), and as each batch ends, hands every result to `on_result` (which stores it)
   before marking it done in the batch tables;
4. **faults**: failed lines, and the requests of an expired or cancelled batch that it did not answer,
   are submitted again in a new batch, up to `retries` rounds (default 1); what still fails is returned
   as a failed `Completion` (not stored: a re-run retries it). A line that cannot be read is reported in
   one line and its request retried the same way, never stored. When batches are still open after
   `timeout` seconds, they are cancelled, what they finished is stored, and the requests they did not
   answer are **asked live** through the wrapped model (its retries and limits).

Only requests are deduplicated here; the stages above already ask only for what the store lacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import UserError
from ..models.base import ChatModel, ChatRequest, Completion, ResultCallback
from ..models.redact import redact_text
from ..store import Store
from .providers import provider_for
from .records import BatchProvider, Limits, RemoteState
from .store import BatchRecord, BatchStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """How batch mode runs."""

    timeout: float | None = None
    """Seconds to wait for open batches before cancelling them and asking the rest live (None: wait)."""
    poll_interval: float = 30.0
    """Seconds between polls."""
    retries: int = 1
    """New batches for failed, expired or cancelled requests before they are reported failed."""
    cancel_wait: float = 600.0
    """After a timeout's cancel, seconds to wait for the provider to end the batch (OpenAI: up to 10 min)."""
    limits: Limits | None = None
    """Requests / bytes per batch (default: the provider's)."""


@dataclass(frozen=True)
class BatchEvent:
    """What `on_event` receives: a batch was submitted, resumed, polled, ended, or a note."""

    kind: str
    """submitted | resumed | poll | ended | note"""
    batch: str
    """The provider's batch id (the local id while it has none)."""
    done: int = 0
    failed: int = 0
    total: int = 0
    elapsed: float = 0.0
    message: str = ""


EventCallback = Callable[[BatchEvent], None]


@dataclass
class _Open:
    record: BatchRecord
    remote_id: str
    started: float
    keys: set[str]


class BatchChatModel:
    """`model` through its provider's batch API (see the module docstring); same identity as `model`."""

    stream_slice = 10**9  # the stages hand over every pending request at once; splitting is done here

    def __init__(
        self, model: ChatModel, store: Store, options: BatchOptions | None = None, on_event: EventCallback | None = None
    ) -> None:
        self.model = model
        self.identity = model.identity
        self.options = options or BatchOptions()
        self.provider: BatchProvider = provider_for(model, self.options.limits)
        self.batches = BatchStore(store)
        self.on_event = on_event
        self.live_calls = 0
        """Requests asked live after a batch timeout (in this process)."""

    def __getattr__(self, name: str) -> object:  # context_length, prompt_tokens, connection_key, ...
        if name in ("model", "__setstate__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def _emit(
        self, kind: str, batch: str, state: RemoteState | None = None, started: float | None = None, message: str = ""
    ) -> None:
        event = BatchEvent(
            kind,
            batch,
            state.done if state else 0,
            state.failed if state else 0,
            state.total if state else 0,
            time.monotonic() - started if started else 0.0,
            message,
        )
        if self.on_event is not None:
            self.on_event(event)
        elif message:
            log.warning("%s", message)

    # -- ChatModel -------------------------------------------------------------------------------
    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        """Complete every request through batches (live after a timeout); results in input order.

        Raises:
            UserError: a batch API call failed for good (the SDK's retries spent): one line; the batches
                already submitted are in the store, and a re-run resumes them.
        """
        try:
            return await self._generate(requests, on_result)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] not in ("openai", "anthropic"):
                raise
            raise UserError(
                f"{self.identity}: a batch API call failed ({type(exc).__name__}: "
                f"{redact_text(' '.join(str(exc).split()))[:200]}); submitted batches are in the store, "
                "re-run to resume them"
            ) from None

    async def _generate(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        where: dict[str, list[int]] = {}
        pending: dict[str, ChatRequest] = {}
        for i, r in enumerate(requests):
            key = r.cache_key(self.identity)
            where.setdefault(key, []).append(i)
            pending.setdefault(key, r)

        def deliver(key: str, completion: Completion) -> None:
            pending.pop(key, None)
            for i in where.get(key, ()):
                results[i] = completion
                if on_result is not None:
                    on_result(i, completion)

        started = time.monotonic()
        errors: dict[str, str] = {}
        resumed = await self._resume(set(pending))
        covered = set().union(*(o.keys for o in resumed)) if resumed else set()
        failed, unanswered = await self._follow(resumed, pending, deliver, errors, started)
        # first new batch: what no open batch held, and what failed in the resumed ones
        todo = {k: r for k, r in pending.items() if k not in covered or k in failed}
        round_ = 0
        while todo and not unanswered:
            opened = [await self._submit(chunk, round_) for chunk in self._split(todo)]
            failed, unanswered = await self._follow(opened, pending, deliver, errors, started)
            failed = [k for k in failed if k in pending]
            round_ += 1
            todo = {}
            if failed and round_ <= self.options.retries and not unanswered:
                self._emit(
                    "note",
                    opened[-1].remote_id,
                    message=(
                        f"{len(failed)} request(s) failed, expired or were cancelled in the batch: retried in a "
                        "new batch"
                    ),
                )
                todo = {k: pending[k] for k in failed}
            elif failed and not unanswered:
                self._emit(
                    "note",
                    opened[-1].remote_id,
                    message=(
                        f"{len(failed)} request(s) still failed after {round_} batch(es): not stored; a re-run "
                        "retries them"
                    ),
                )
        live = {k: pending[k] for k in unanswered if k in pending}
        if live:
            self._emit("note", "-", message=f"--batch-timeout: {len(live)} unanswered request(s) asked live")
            keys = list(live)
            self.live_calls += len(keys)

            def live_done(i: int, completion: Completion) -> None:
                if completion.ok:
                    deliver(keys[i], completion)
                else:
                    errors[keys[i]] = completion.error or "failed"

            await self.model.generate([live[k] for k in keys], on_result=live_done)
        for key in list(pending):
            completion = Completion("", error=f"batch: {errors.get(key, 'no result')}")
            for i in where[key]:
                results[i] = completion
                if on_result is not None:
                    on_result(i, completion)
        return [r if r is not None else Completion("", error="not run") for r in results]

    async def aclose(self) -> None:
        await self.provider.aclose()
        await self.model.aclose()

    # -- steps -----------------------------------------------------------------------------------
    def _split(self, todo: dict[str, ChatRequest]) -> list[list[tuple[str, ChatRequest, bytes]]]:
        limits = self.provider.limits
        chunks: list[list[tuple[str, ChatRequest, bytes]]] = [[]]
        size = 0
        for key, request in todo.items():
            line = self.provider.line(key, request)
            if chunks[-1] and (len(chunks[-1]) >= limits.max_requests or size + len(line) + 1 > limits.max_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append((key, request, line))
            size += len(line) + 1
        return [c for c in chunks if c]

    async def _submit(self, chunk: list[tuple[str, ChatRequest, bytes]], round_: int) -> _Open:
        local_id = self.batches.prepare(self.provider.name, self.identity, [(k, r) for k, r, _ in chunk], round_)
        remote_id, status, file_id = await self.provider.submit(local_id, [line for _, _, line in chunk])
        self.batches.set_remote(local_id, remote_id, status, file_id)
        record = self.batches.open_batches(self.identity)
        rec = next(r for r in record if r.id == local_id)
        self._emit("submitted", remote_id, RemoteState(status, False, 0, 0, len(chunk)), message="")
        return _Open(rec, remote_id, time.monotonic(), {k for k, _, _ in chunk})

    async def _resume(self, wanted: set[str]) -> list[_Open]:
        """The open batches of this identity that hold any wanted request (a preparing one is looked for at
        the provider, and abandoned when it is not there: its requests are submitted afresh)."""
        out = []
        for rec in self.batches.open_batches(self.identity):
            states = self.batches.request_states(rec.id)
            keys = {k for k, s in states.items() if s != "done"} & wanted
            if not keys:
                continue
            remote_id = rec.remote_id
            if remote_id is None:
                remote_id = await self.provider.find(rec.id)
                if remote_id is None:
                    self.batches.close(rec.id, "abandoned", "never reached the provider")
                    continue
                self.batches.set_remote(rec.id, remote_id, None)
            self._emit("resumed", remote_id, RemoteState(rec.remote_status or "?", False, 0, 0, rec.n_requests))
            out.append(_Open(rec, remote_id, time.monotonic(), keys))
        return out

    async def _follow(
        self,
        opened: list[_Open],
        pending: dict[str, ChatRequest],
        deliver: Callable[[str, Completion], None],
        errors: dict[str, str],
        started: float,
    ) -> tuple[list[str], list[str]]:
        """Poll until every batch ended; store results. Returns (failed keys, keys unanswered at a timeout)."""
        failed: list[str] = []
        unanswered: list[str] = []
        todo = list(opened)
        cancelled_at: float | None = None
        while todo:
            still = []
            for o in todo:
                state = await self.provider.retrieve(o.remote_id)
                self.batches.set_status(o.record.id, state.status)
                self._emit("poll", o.remote_id, state, o.started)
                if not state.ended:
                    still.append(o)
                    continue
                f = await self._collect(o, pending, deliver, errors)
                if cancelled_at is not None:
                    unanswered += f
                else:
                    failed += f
                self._emit("ended", o.remote_id, state, o.started)
            todo = still
            if not todo:
                break
            now = time.monotonic()
            timeout = self.options.timeout
            if timeout is not None and cancelled_at is None and now - started >= timeout:
                cancelled_at = now
                for o in todo:
                    await self.provider.cancel(o.remote_id)
                    self.batches.set_status(o.record.id, "cancelling", "--batch-timeout")
                self._emit(
                    "note",
                    todo[0].remote_id,
                    message=(
                        f"--batch-timeout {timeout:g} s: {len(todo)} open batch(es) cancelled; what they finished "
                        "is stored, the rest is asked live"
                    ),
                )
            if cancelled_at is not None and now - cancelled_at >= self.options.cancel_wait:
                for o in todo:  # the provider has not ended them: ask their requests live, leave them open
                    unanswered += [k for k in o.keys if k in pending]
                break
            await asyncio.sleep(self.options.poll_interval)
        return failed, unanswered

    async def _collect(
        self,
        o: _Open,
        pending: dict[str, ChatRequest],
        deliver: Callable[[str, Completion], None],
        errors: dict[str, str],
    ) -> list[str]:
        """Store the results of an ended batch (each through `deliver`, then marked done); returns its
        requests that got no usable result (failed, expired, cancelled, unreadable or missing lines)."""
        lines, warnings = await self.provider.results(o.remote_id)
        for w in warnings:
            self._emit("note", o.remote_id, message=w)
        done: list[str] = []
        bad: list[str] = []
        seen: set[str] = set()
        for res in lines:
            key = res.custom_id
            if key not in o.keys or key in seen:
                continue
            seen.add(key)
            if res.completion is not None:
                if key in pending:
                    deliver(key, res.completion)
                done.append(key)
            else:
                errors[key] = res.error or "failed"
                bad.append(key)
        missing = [k for k in o.keys if k not in seen]
        for k in missing:
            errors.setdefault(k, "no readable result line")
        self.batches.mark(o.record.id, done, "done")
        for k in bad + missing:
            self.batches.mark(o.record.id, [k], "failed", errors[k])
        self.batches.close(o.record.id)
        return bad + missing


def batched_model(
    model: ChatModel, store: Store, options: BatchOptions | None = None, on_event: EventCallback | None = None
) -> ChatModel:
    """`model` in batch mode when its backend has a batch API (`openai:` chat, `anthropic:`), else `model`
    itself (local models run as usual)."""
    from .providers import supports_batch

    if isinstance(model, BatchChatModel) or not supports_batch(model):
        return model
    return BatchChatModel(model, store, options, on_event)


def batch_judge(
    judge: object, store: Store, options: BatchOptions | None = None, on_event: EventCallback | None = None
) -> bool:
    """Put an LLM judge's model in batch mode (in place), and have the stages hand it every case at once.
    Returns False (and changes nothing) for judges without a batchable model (offline judges, classifiers,
    local models)."""
    from ..judging.llm import LLMJudge

    if not isinstance(judge, LLMJudge):
        return False
    model = batched_model(judge.model, store, options, on_event)
    if model is judge.model:
        return False
    judge.model = model
    judge.stream_batch = 10**9  # type: ignore[attr-defined]  # one judge call: one set of batches
    judge.stream_workers = 1  # type: ignore[attr-defined]
    return True
