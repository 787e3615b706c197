"""The `ray` engine: one model served by N replicas on a Ray cluster, behind the `ChatModel` interface.

`RayChatModel(spec, options, replicas=N)` starts N Ray actors, each loading the `hf:` or `vllm:` backend
for `spec` with `options` (one GPU per replica with `num_gpus=1`, a whole tensor-parallel group for
`vllm:` with `tensor_parallel_size=K`, or `num_cpus` on CPU). `generate` cuts the requests into chunks
in a work queue; each replica keeps `depth` chunks in flight, and `on_result` fires on the event-loop
thread as each chunk comes back (awaited Ray object refs, the asyncio form of a `ray.wait` loop), so
the streamed stages (`medsafetybench.evaluation.stages`) need no change. Only the driver (the process that called
`generate`) touches the run store: replicas return completions and never open it.

Identity: every replica reports the identity of the backend it loaded, they must agree, and that is
this model's identity, so a run made with `--engine ray` and one without share cache keys (the same
responses, judgements and runs). The weights must therefore be at the same path on every node (a
shared file system, or the same copy at the same path); a node that sees other weights is refused. A
driver that can fingerprint the weights itself passes `identity=` and `start=False`: the replicas then
start only when a request or a score is actually missing, so a fully stored run starts none.

Failures: a replica that dies mid-chunk (killed, out of host memory, node lost) loses that chunk only;
the chunk goes back to the queue and another replica, or the same actor once Ray has restarted it
(`max_restarts`; one unavailable longer than `restart_timeout` is given up), does it again. Results arrive whole per
chunk and each index is delivered once,
so nothing is lost or stored twice. When no replica is left, `generate` raises; what was stored stays
stored and a re-run asks only for the rest. An exception raised inside a replica's backend is
re-raised here, as in one process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MissingExtra, UserError
from .base import ChatRequest, Completion, ResultCallback
from .concurrency import gather_or_cancel
from .ray_replica import Replica, pack_dir, stage_dir
from .spec import ModelSpec, parse_spec

__all__ = ["RayChatModel", "RemoteLogLik", "EngineStats", "Replica", "connect", "import_ray", "pack_dir", "stage_dir"]

RAY_BACKENDS = ("hf", "vllm")
DEFAULT_DEPTH = 2
DEFAULT_SLICE = 256
NOTICE_AFTER = 60.0
"""Seconds of waiting for replicas to load before saying what they wait for."""
log = logging.getLogger(__name__)


def import_ray() -> Any:
    """The `ray` module, or a `MissingExtra` naming the `[ray]` extra."""
    try:
        import ray
    except ImportError as exc:
        raise MissingExtra("ray", "ray", "The Ray engine (--engine ray)") from exc
    return ray


def connect(address: str | None = None, **init_kwargs: Any) -> Any:
    """Join the Ray cluster at `address` (else $RAY_ADDRESS; else start a local one on this machine);
    a no-op when this process is already connected. Returns the `ray` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("log_to_driver", False)
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local cluster"
        raise UserError(
            f"could not reach the Ray cluster ({where}): {str(exc).splitlines()[0]}; start one with "
            "`ray start --head` and pass --engine ray:HEAD_IP:6379, or plain --engine ray for a "
            "local one"
        ) from None
    return ray


@dataclass
class EngineStats:
    """What the replicas did for this model (driver-side counts)."""

    sent: int = 0
    """Requests sent to replicas (a request re-dealt after a failure counts again)."""
    completed: int = 0
    """Requests whose completion came back and was delivered through `on_result` (once each)."""
    requeued: int = 0
    """Requests put back in the queue because their replica failed."""
    replica_failures: int = 0
    """Calls lost because their replica died or was restarting."""
    retired: int = 0
    """Replicas given up on (dead, or failed more often than `max_restarts`)."""


@dataclass
class _Slot:
    handle: Any
    pid: int = 0
    node: str = ""
    failures: int = 0
    """Calls lost in a row."""
    unavailable_since: float | None = None
    alive: bool = True


class RayChatModel:
    """A `ChatModel` whose requests are served by Ray actors (see module docstring).

    Args:
        spec: the wrapped model, `hf:PATH[+ADAPTER]` or `vllm:PATH`.
        options: backend options, as for `load_model` (batch_size, prompt_format, dtype, ...).
        replicas: number of actors.
        address: Ray cluster address (None: $RAY_ADDRESS or a new local cluster).
        num_gpus: GPUs per replica (default: `tensor_parallel_size` for vllm:, 1 for hf: when the cluster
            has GPUs, else 0).
        num_cpus: CPUs per replica.
        chunk: requests per call to a replica (default 4 x batch_size for hf:, 256 for vllm:).
        depth: chunks in flight per replica.
        max_restarts: times Ray restarts a dead replica before it is given up.
        restart_timeout: seconds a replica may stay unavailable (restarting, reloading) before it is given up.
        stage: directories to create on each replica's node before loading (path -> `pack_dir` files).
        identity: the identity the replicas must report, when the driver can compute it (it reads the
            weights' files); with `start=False` the replicas then start only when first needed, so a run
            whose results are all stored starts none.
        start: start the replicas now and wait until they have loaded (else on first use, or `wait_ready`).
    """

    def __init__(
        self,
        spec: str | ModelSpec,
        options: dict[str, Any] | None = None,
        *,
        replicas: int = 1,
        address: str | None = None,
        num_gpus: float | None = None,
        num_cpus: float | None = None,
        chunk: int | None = None,
        depth: int = DEFAULT_DEPTH,
        max_restarts: int = 1,
        restart_timeout: float = 900.0,
        stage: dict[str, dict[str, bytes]] | None = None,
        identity: str | None = None,
        start: bool = True,
    ) -> None:
        self.spec = parse_spec(spec) if isinstance(spec, str) else spec
        if self.spec.backend not in RAY_BACKENDS:
            raise UserError(
                f"--engine ray serves local models (hf:, vllm:); '{self.spec}' is {self.spec.backend}:, "
                "whose endpoint already scales: raise --concurrency instead"
            )
        if replicas < 1:
            raise UserError(f"--replicas must be at least 1 (got {replicas})")
        if identity is None and not start:
            raise ValueError("RayChatModel: start=False needs the identity")
        self.options = {k: v for k, v in (options or {}).items() if v is not None}
        self.ray = ray = connect(address)
        total = ray.cluster_resources()
        if num_gpus is None:
            tp = int(self.options.get("tensor_parallel_size") or 1)
            num_gpus = tp if self.spec.backend == "vllm" else (1 if total.get("GPU", 0) > 0 else 0)
        num_cpus = 1 if num_cpus is None else num_cpus
        for name, each in (("GPU", num_gpus), ("CPU", num_cpus)):
            if replicas * each > total.get(name, 0):
                raise UserError(
                    f"--replicas {replicas} x {each:g} {name}(s) each needs {replicas * each:g} {name}s; "
                    f"the Ray cluster has {total.get(name, 0):g}: use fewer replicas or add nodes"
                )
        batch = int(self.options.get("batch_size") or 8)
        self.replicas = replicas
        self.chunk = max(1, chunk or (4 * batch if self.spec.backend == "hf" else 256))
        self.depth = max(1, depth)
        self.max_restarts = max(0, max_restarts)
        self.restart_timeout = restart_timeout
        self.stream_window = 2
        self.stream_slice = max(DEFAULT_SLICE, replicas * self.chunk * self.depth)
        self.stats = EngineStats()
        self._expect = identity
        self._identity: str | None = None
        self._stage = stage
        self._need = {"GPU": num_gpus, "CPU": num_cpus}
        self._start_lock = threading.Lock()
        self._ready = False
        self.slots: list[_Slot] = []
        self._ready_refs: list[Any] = []
        if start:
            self.start()

    def _launch(self) -> None:
        with self._start_lock:
            if self.slots:
                return
            actor = self.ray.remote(Replica).options(
                num_gpus=self._need["GPU"],
                num_cpus=self._need["CPU"],
                max_restarts=self.max_restarts,
                max_task_retries=0,
            )
            self.slots = [_Slot(actor.remote(str(self.spec), self.options, self._stage)) for _ in range(self.replicas)]
            self._ready_refs = [s.handle.ready.remote() for s in self.slots]

    def start(self) -> None:
        """Start the replicas (if not yet) and wait until every one has loaded; raise if one failed."""
        self._launch()
        if not self._ready:
            refs = self._ready_refs
            while len(self.ray.wait(refs, num_returns=len(refs), timeout=NOTICE_AFTER)[0]) < len(refs):
                self._notice()
            self._check_ready(self.ray.get(refs))

    async def wait_ready(self) -> None:
        """`start` without blocking the event loop."""
        self._launch()
        if not self._ready:
            pending = [asyncio.ensure_future(asyncio.wrap_future(r.future())) for r in self._ready_refs]
            while True:
                _, left = await asyncio.wait(pending, timeout=NOTICE_AFTER)
                if not left:
                    break
                self._notice()
            self._check_ready([p.result() for p in pending])

    def _notice(self) -> None:
        """Say why loading takes long when the cluster lacks free resources for the replicas (Ray then waits
        until other work frees them, or forever)."""
        free = self.ray.available_resources()
        short = [f"{need:g} {name}" for name, need in self._need.items() if need and free.get(name, 0) < need]
        if short:
            log.warning(
                "%s: still waiting for Ray resources (each replica needs %s; free now: %s GPU, %s CPU); "
                "other Ray work holds them",
                self.spec,
                " and ".join(short),
                f"{free.get('GPU', 0):g}",
                f"{free.get('CPU', 0):g}",
            )

    def _check_ready(self, reports: list[dict[str, Any]]) -> None:
        if self._ready:
            return
        for slot, report in zip(self.slots, reports, strict=True):
            slot.pid, slot.node = report["pid"], report["node"]
            if report["error"] is not None:
                is_user, message = report["error"]
                self._kill()
                if is_user:
                    raise UserError(message)
                raise RuntimeError(f"a Ray replica of {self.spec} failed to load: {message}")
        identities = {r["identity"] for r in reports}
        if self._expect is not None:
            identities.add(self._expect)
        if len(identities) != 1:
            self._kill()
            raise UserError(
                f"the replicas of {self.spec} see different weights ({', '.join(sorted(identities))}): "
                "put the model at the same path with the same files on every node"
            )
        self._identity = identities.pop()
        self._ready = True

    @property
    def identity(self) -> str:
        if self._expect is not None:
            return self._expect
        if self._identity is None:
            raise RuntimeError("RayChatModel: call start() or await wait_ready() first")
        return self._identity

    def replica_pids(self) -> list[int]:
        """Process ids of the replicas as loaded (for operators and fault tests)."""
        return [s.pid for s in self.slots]

    def _failed(self, slot: _Slot, exc: Exception) -> float:
        """Note a call lost with its replica and return how long that replica's callers back off. A replica
        is given up when Ray says it is dead (its restarts are spent or it was killed for good), or when it
        has been unavailable (restarting) for longer than `restart_timeout` seconds."""
        self.stats.replica_failures += 1
        slot.failures += 1
        now = time.monotonic()
        slot.unavailable_since = slot.unavailable_since or now
        died = isinstance(exc, self.ray.exceptions.ActorDiedError)
        if slot.alive and (died or now - slot.unavailable_since > self.restart_timeout):
            slot.alive = False
            self.stats.retired += 1
        return min(2.0, 0.1 * slot.failures)

    def _recovered(self, slot: _Slot) -> None:
        slot.failures, slot.unavailable_since = 0, None

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        ray = self.ray
        if not requests:
            return []
        await self.wait_ready()
        results: list[Completion | None] = [None] * len(requests)
        todo: asyncio.Queue[list[int] | None] = asyncio.Queue()
        for s in range(0, len(requests), self.chunk):
            todo.put_nowait(list(range(s, min(len(requests), s + self.chunk))))
        pending = todo.qsize()

        async def drain(slot: _Slot) -> None:
            nonlocal pending
            while True:
                idx = await todo.get()
                if idx is None or not slot.alive:  # all done, or this replica is given up: pass it on
                    todo.put_nowait(idx)
                    return
                self.stats.sent += len(idx)
                try:
                    outs = await slot.handle.generate.remote([requests[i] for i in idx])
                except ray.exceptions.RayActorError as exc:
                    todo.put_nowait(idx)  # another replica, or this one once restarted, does it again
                    self.stats.requeued += len(idx)
                    await asyncio.sleep(self._failed(slot, exc))
                    continue
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(getattr(exc, "cause", None), UserError):
                        raise exc.cause from None
                    raise
                self._recovered(slot)
                for i, completion in zip(idx, outs, strict=True):
                    if results[i] is None:
                        results[i] = completion
                        self.stats.completed += 1
                        if on_result is not None:
                            on_result(i, completion)
                pending -= 1
                if pending == 0:
                    todo.put_nowait(None)

        live = [s for s in self.slots if s.alive]
        await gather_or_cancel([asyncio.ensure_future(drain(s)) for s in live for _ in range(self.depth)])
        if pending:
            raise RuntimeError(
                f"every Ray replica of {self.spec} has died ({self.stats.replica_failures} lost "
                "call(s)); finished results are stored: re-run the same command to resume"
            )
        return [r for r in results if r is not None]

    def loglik_view(self, prompt_format: str = "raw", identity: str | None = None) -> RemoteLogLik:
        """A stand-in for the hf: backend under `prompt_format` whose log-likelihood scoring runs on the
        replicas (what `medqa.evaluate_medqa(..., model=...)` takes). Its identity is asked of a replica
        unless the driver gives it (then no replica starts before a score is needed)."""
        if self.spec.backend != "hf":
            raise UserError(f"medical QA log-likelihoods need an hf: model; '{self.spec}' is {self.spec.backend}:")
        if identity is None:
            self.start()
            identity = self.ray.get(self._live()[0].handle.identity_for.remote(prompt_format))
        return RemoteLogLik(self, identity)

    def _live(self) -> list[_Slot]:
        live = [s for s in self.slots if s.alive]
        if not live:
            raise RuntimeError(f"every Ray replica of {self.spec} has died")
        return live

    def _kill(self) -> None:
        for slot in self.slots:
            try:
                self.ray.kill(slot.handle, no_restart=True)
            except Exception:  # already gone
                pass
            slot.alive = False

    async def aclose(self) -> None:
        self._kill()


class RemoteLogLik:
    """Medical QA scoring on a `RayChatModel`'s replicas: `identity` is the hf: backend's under the view's
    prompt format; each `score` call goes whole to one live replica (the same batches as in one process)."""

    def __init__(self, model: RayChatModel, identity: str) -> None:
        self.model, self.identity = model, identity
        self._next = 0

    def loglik_scorer(self, *, batch_size: int, add_bos: bool) -> _RemoteScorer:
        return _RemoteScorer(self, batch_size, add_bos)


class _RemoteScorer:
    def __init__(self, view: RemoteLogLik, batch_size: int, add_bos: bool) -> None:
        self.view, self.batch_size, self.add_bos = view, batch_size, add_bos

    def score(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        model = self.view.model
        payload = [(p, tuple(c)) for p, c in pairs]
        model.start()
        while True:
            live = model._live()
            slot = live[self.view._next % len(live)]
            self.view._next += 1
            try:
                out = model.ray.get(slot.handle.loglik.remote(payload, self.batch_size, self.add_bos))
            except model.ray.exceptions.RayActorError as exc:
                time.sleep(model._failed(slot, exc))
                continue
            model._recovered(slot)
            return out
