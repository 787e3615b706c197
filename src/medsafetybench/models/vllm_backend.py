"""The `vllm:` backend: a vLLM engine (`vllm.LLM`) behind the `ChatModel` interface.

For throughput on GPUs: vLLM schedules all requests of a call together with continuous batching
(requests with different `GenerationConfig`s share one engine run) and can shard a model across the
GPUs of one node (`tensor_parallel_size`). A LoRA adapter (`vllm:BASE+ADAPTER`) is served through
vLLM's LoRA support (the engine starts with `enable_lora`, the adapter's rank rounded up to one vLLM
takes), so it need not be merged first.

Prompts are rendered by the same prompt formats and the same transformers tokenizer as the `hf:`
backend and handed over as token ids, and the new token ids are decoded by that tokenizer too, so the
two backends see and return the same strings for the same tokens. Replies stop at the checkpoint's
eos ids, as in `hf:`. Greedy outputs on the tiny model equal the `hf:` backend's
(`tests/models/test_vllm_backend.py`); with sampling, a request's `seed` makes its output independent of the
batch it ran in (vLLM seeds each request), unlike `hf:`.

The engine starts on the first `generate` that has work (or on `start()`), never for a call whose
responses were all cached, and at most once per process for the same weights and engine settings:
engines live in a process-wide table until the process ends, so a second model object on the same
weights (e.g. the model under test and a judge) reuses the first one's engine and its memory. All
work on an engine runs on one thread of its own; `on_result` fires on the event-loop thread as each
request finishes. A one-token probe at start turns a model the engine cannot serve into a UserError.

`identity` is `vllm:PATH[+ADAPTER]|fmt=FORMAT|w=FINGERPRINT`: the weights fingerprint and prompt
format, as for `hf:`, with its own prefix, so `hf:` and `vllm:` responses never share cache entries
(their kernels differ, and on GPUs in bf16 greedy outputs can differ between them).

vLLM is an optional extra imported only when an engine is built; its logging is turned down to
errors, on stderr, unless `VLLM_LOGGING_LEVEL` / `VLLM_LOGGING_STREAM` say otherwise. On vLLM's CPU
build the KV cache gets 4 GiB unless `VLLM_CPU_KVCACHE_SPACE` or `kv_cache_memory_bytes` says otherwise
(vLLM's CPU default would take 90% of the machine's memory); see `_cpu_defaults` for the rest.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MissingExtra, UserError
from .base import ChatRequest, Completion, GenerationConfig, ResultCallback, Usage
from .formats import check_format, decode_reply, encode_prompt, finish_reply, render_prompt, resolve_format
from .hf_backend import _Source, local_identity
from .local_spec import parse_local_tail
from .registry import register_backend
from .spec import ModelSpec

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts
CPU_KV_CACHE_BYTES = 4 << 30


def _import_vllm() -> Any:
    # vLLM configures its logging when first imported: errors only, and to stderr (its default is
    # INFO to stdout, which would mix into `--json` output). Set these variables to see more.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except ImportError as exc:
        raise MissingExtra("vllm", "vllm", "The vllm: model backend") from exc
    return vllm


@dataclass(frozen=True)
class EngineSettings:
    """Everything an engine is built from; equal settings share one engine per process."""

    model: str
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    max_lora_rank: int | None = None  # None: LoRA disabled
    enforce_eager: bool = False
    kv_cache_memory_bytes: int | None = None


class _Engine:
    """One vLLM engine and the one thread that builds and drives it: vLLM's CPU build binds OpenMP
    threads in the thread that builds the engine, and its kernels check that every step runs with the
    same thread count, so all engine work goes through `submit` (which also serialises generate calls)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.llm: Any = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-engine")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on the engine thread."""
        return self._thread.submit(fn, *args)

    def build(self) -> Any:
        """The `vllm.LLM`, built on first call (engine thread only; failures become UserErrors)."""
        if self.llm is None:
            self.llm = _build_llm(self.settings)
            ENGINE_STARTS.append(self.settings)
        return self.llm


_ENGINES: dict[EngineSettings, _Engine] = {}
_ENGINES_LOCK = threading.Lock()
_LORA_IDS: dict[str, int] = {}
ENGINE_STARTS: list[EngineSettings] = []  # every engine this process built, in order (tests read it)


def _engine_for(settings: EngineSettings) -> _Engine:
    """The process's engine for `settings` (not necessarily built yet)."""
    with _ENGINES_LOCK:
        if settings not in _ENGINES:
            _ENGINES[settings] = _Engine(settings)
        return _ENGINES[settings]


def _build_llm(settings: EngineSettings) -> Any:
    vllm = _import_vllm()
    kwargs: dict[str, Any] = {
        "model": settings.model,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "dtype": settings.dtype,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "max_model_len": settings.max_model_len,
        "enforce_eager": settings.enforce_eager,
        "kv_cache_memory_bytes": settings.kv_cache_memory_bytes,
        "use_tqdm_on_load": False,
        "generation_config": "vllm",  # our GenerationConfig decides decoding
    }
    if _on_cpu():
        _cpu_defaults(settings.tensor_parallel_size)
        _reread_vllm_environment()
        if settings.kv_cache_memory_bytes is None and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    if settings.max_lora_rank is not None:
        kwargs.update(enable_lora=True, max_lora_rank=settings.max_lora_rank, max_loras=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            llm = vllm.LLM(**kwargs)
            # one token through every layer, so a kernel that refuses this model fails here, at the
            # start, and not in the middle of a run
            llm.generate([{"prompt_token_ids": [0]}], vllm.SamplingParams(max_tokens=1), use_tqdm=False)
    except (OSError, ValueError, RuntimeError, NotImplementedError) as exc:
        reason = _first_line(exc)
        raise UserError(
            f"vLLM could not start on '{settings.model}': {reason}{start_hint(settings.model, reason)}"
        ) from exc
    return llm


def start_hint(model: str, reason: str) -> str:
    """What to do when vLLM refused a model, to append to its reason ("" when there is nothing to say):
    heads narrower than vLLM's CPU attention takes (the tiny model's are 16 wide) have a fix, a copy with
    zero-padded wider heads that computes the same function."""
    if "head_dim" not in reason and "head size" not in reason.lower():
        return ""
    wide = f"{model.rstrip('/')}-wide64"
    return (
        f"; vLLM's CPU attention needs heads at least 32 wide: write a copy with wider heads (the same "
        f"function) with `python -m medsafetybench.testing.tiny widen {model} {wide}` and serve vllm:{wide}"
    )


def _lora_id(path: str) -> int:
    """A process-wide id per adapter folder (vLLM caches adapters by id, so ids must not be reused)."""
    with _ENGINES_LOCK:
        return _LORA_IDS.setdefault(path, len(_LORA_IDS) + 1)


def _on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


def _reread_vllm_environment() -> None:
    """vLLM caches its environment variables once an engine has started; let the next engine read
    them again (the CPU defaults below differ with the tensor-parallel size)."""
    try:
        from vllm import envs
    except ImportError:
        return
    disable = getattr(envs, "disable_envs_cache", None)
    if disable is not None:
        disable()


def _cpu_defaults(tensor_parallel_size: int) -> None:
    """Settings for vLLM's CPU build, each unless its variable is already set: the engine core runs
    in this process (a separate engine-core process took 5x longer to start on the tiny model and
    polls a core while idle), and with tensor parallelism on fewer NUMA nodes than ranks, the
    allowed cores are split evenly between the ranks (vLLM's automatic binding wants a node each)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if tensor_parallel_size < 2 or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return
    nodes = len(list(Path("/sys/devices/system/node").glob("node[0-9]*")))
    if nodes >= tensor_parallel_size:
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < tensor_parallel_size:
        raise UserError(
            f"--tensor-parallel-size {tensor_parallel_size} needs at least as many CPU cores on "
            f"vLLM's CPU build; this process may use {len(cpus)}"
        )
    share = len(cpus) // tensor_parallel_size
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(
        ",".join(map(str, cpus[r * share : (r + 1) * share])) for r in range(tensor_parallel_size)
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _engine_inputs(core: Any, prompts: list[list[int]]) -> list[Any]:
    """Token-id prompts as the engine takes them: rendered by its renderer where it has one (vLLM
    0.32 deprecates passing raw prompt dicts to `add_request`), else the raw dicts."""
    raw = [{"prompt_token_ids": p} for p in prompts]
    render = getattr(getattr(core, "renderer", None), "render_cmpl", None)
    return list(render(raw)) if render is not None else raw


def _adapter_rank(adapter: Path | None, name: str) -> int:
    """The LoRA rank in `adapter_config.json`, checked to be one vLLM can serve."""
    config = (adapter / "adapter_config.json") if adapter is not None else None
    if config is None or not config.is_file():
        raise UserError(
            f"adapter '{name}' has no adapter_config.json: give the folder that peft's "
            "save_pretrained (or `medsafety finetune`) wrote"
        )
    try:
        rank = int(json.loads(config.read_text(encoding="utf-8")).get("r", 0))
    except (ValueError, TypeError) as exc:
        raise UserError(f"{config}: not a readable adapter config ({exc})") from exc
    if rank < 1 or rank > LORA_RANKS[-1]:
        raise UserError(
            f"{config}: LoRA rank r={rank} is outside what vLLM serves (1-{LORA_RANKS[-1]}); "
            "use hf:BASE+ADAPTER or merge the adapter (medsafety finetune --merge)"
        )
    return rank


@register_backend("vllm")
class VLLMChatModel:
    """A vLLM engine behind the `ChatModel` interface (see module docstring)."""

    stream_slice = 1024  # requests per generate call from the streaming stages: the engine batches them all
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "prompt_format",
            "tensor_parallel_size",
            "dtype",
            "gpu_memory_utilization",
            "max_model_len",
            "enforce_eager",
            "kv_cache_memory_bytes",
        }
    )

    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        prompt_format: str = "chat",
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        kv_cache_memory_bytes: int | None = None,
    ) -> None:
        self.source, self.adapter, rank = self.check(
            path, adapter, prompt_format=prompt_format, tensor_parallel_size=tensor_parallel_size
        )
        self.prompt_format = resolve_format(prompt_format, self.source.ref, self.source.local)
        self.settings = EngineSettings(
            model=self.source.ref,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            max_lora_rank=None if rank is None else next(r for r in LORA_RANKS if r >= rank),
            enforce_eager=enforce_eager,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
        )
        self.tokenizer, self.eos_ids = self._load_tokenizer()
        render_prompt(self.prompt_format, ChatRequest.simple("ping").messages, self.tokenizer)  # fail early
        self.identity = local_identity("vllm", self.source, self.adapter, self.prompt_format)

    @classmethod
    def check(
        cls,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        prompt_format: str = "chat",
        tensor_parallel_size: int = 1,
    ) -> tuple[_Source, _Source | None, int | None]:
        """Cheap checks before anything is opened or started (vLLM is looked up, not imported; no
        engine): vLLM is installed, the model and adapter folders exist, the adapter's rank is
        servable, the options are sane. Raises UserError (MissingExtra without vLLM); returns
        (model source, adapter source or None, adapter rank or None)."""
        if tensor_parallel_size < 1:
            raise UserError(f"--tensor-parallel-size must be at least 1 (got {tensor_parallel_size})")
        check_format(prompt_format)
        source = _Source.resolve(str(path), "model path")
        ad = _Source.resolve(str(adapter), "adapter path") if adapter is not None else None
        if importlib.util.find_spec("vllm") is None:
            raise MissingExtra("vllm", "vllm", "The vllm: model backend")
        if ad is None:
            return source, None, None
        if ad.local is None:
            raise UserError(f"adapter '{adapter}' is not a local folder: vllm: serves adapters from disk")
        return source, ad, _adapter_rank(ad.local, str(adapter))

    @classmethod
    def identity_for(cls, spec: ModelSpec, **options: Any) -> str:
        """What `load_model(spec, **options).identity` would be, without vLLM, tokenizer or engine."""
        source = _Source.resolve(spec.name, "model path")
        adapter = _Source.resolve(spec.adapter, "adapter path") if spec.adapter else None
        fmt = resolve_format(options.get("prompt_format") or "chat", source.ref, source.local)
        return local_identity("vllm", source, adapter, fmt)

    @classmethod
    def parse_tail(cls, backend: str, tail: str, text: str) -> ModelSpec:
        """`PATH_OR_HUB_ID[+ADAPTER]` (the adapter is served through vLLM's LoRA support)."""
        return parse_local_tail(backend, tail, text, adapters=True)

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """The registry's pre-flight check: `validate` with default options (no engine, no import)."""
        cls.validate(spec)

    @classmethod
    def validate(cls, spec: ModelSpec, **options: Any) -> None:
        """`check` for a parsed spec and the CLI's options (what `load_model` would be given)."""
        cls.check(
            spec.name,
            spec.adapter,
            **{k: options[k] for k in ("prompt_format", "tensor_parallel_size") if options.get(k) is not None},
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> VLLMChatModel:
        """Build from a parsed `vllm:` spec; options it does not know are ignored. The engine starts
        on first use (see `start`)."""
        return cls(spec.name, spec.adapter, **{k: options[k] for k in cls.OPTIONS if options.get(k) is not None})

    def _load_tokenizer(self) -> tuple[Any, list[int]]:
        try:
            import transformers
        except ImportError as exc:
            raise MissingExtra("vllm", "transformers", "The vllm: model backend") from exc
        ref = self.source.ref
        try:
            tok = transformers.AutoTokenizer.from_pretrained(ref)
        except (OSError, ValueError) as exc:
            raise UserError(f"could not load the tokenizer of '{ref}': {_first_line(exc)}") from exc
        try:
            eos = transformers.GenerationConfig.from_pretrained(ref).eos_token_id
        except (OSError, ValueError):
            eos = None
        if eos is None:
            eos = tok.eos_token_id
        ids = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        return tok, ids

    @property
    def llm(self) -> Any:
        """The `vllm.LLM` (started if it was not)."""
        return self.start().llm

    def start(self) -> _Engine:
        """Start (or join) this process's engine for these weights and settings; idempotent."""
        engine = _engine_for(self.settings)
        engine.submit(engine.build).result()
        return engine

    @property
    def started(self) -> bool:
        """Whether this process has built the engine these settings use."""
        engine = _ENGINES.get(self.settings)
        return engine is not None and engine.llm is not None

    def _params(self, config: GenerationConfig) -> Any:
        vllm = _import_vllm()
        sampled = config.temperature > 0
        return vllm.SamplingParams(
            max_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_p=config.top_p if sampled else 1.0,
            top_k=0,
            seed=config.seed if sampled else None,
            frequency_penalty=config.frequency_penalty,
            stop_token_ids=self.eos_ids,
            detokenize=False,  # our tokenizer decodes, as in hf:
            output_kind=vllm.sampling_params.RequestOutputKind.FINAL_ONLY,
        )

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        texts = [render_prompt(self.prompt_format, r.messages, self.tokenizer) for r in requests]
        prompts = [encode_prompt(self.tokenizer, t, self.prompt_format) for t in texts]
        results: list[Completion | None] = [None] * len(requests)
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def deliver(i: int, completion: Completion) -> None:  # on the event-loop thread
            results[i] = completion
            if on_result is not None:
                on_result(i, completion)

        def emit(i: int, completion: Completion) -> None:  # from the worker thread
            loop.call_soon_threadsafe(deliver, i, completion)

        engine = _engine_for(self.settings)
        try:
            await asyncio.wrap_future(engine.submit(self._run, engine, requests, prompts, texts, emit, stop))
        except asyncio.CancelledError:
            stop.set()  # the worker aborts the engine's requests at its next step
            raise
        return [r for r in results if r is not None]

    def _run(
        self,
        engine: _Engine,
        requests: Sequence[ChatRequest],
        prompts: list[list[int]],
        texts: list[str],
        emit: Callable[[int, Completion], None],
        stop: threading.Event,
    ) -> None:
        """Engine thread: add the requests to the engine and step it until they are all finished."""
        core = engine.build().llm_engine
        max_len = core.model_config.max_model_len
        todo = []
        for i, p in enumerate(prompts):
            if len(p) >= max_len:
                emit(
                    i,
                    Completion(
                        text="",
                        usage=Usage(len(p), 0),
                        error=(f"prompt of {len(p)} tokens leaves no room in max_model_len {max_len}"),
                    ),
                )
            else:
                todo.append(i)
        if not todo:
            return
        lora = None
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(f"adapter-{_lora_id(self.adapter.ref)}", _lora_id(self.adapter.ref), self.adapter.ref)
        tag = uuid.uuid4().hex[:12]
        index: dict[str, int] = {}
        try:
            for i, prompt in zip(todo, _engine_inputs(core, [prompts[i] for i in todo]), strict=True):
                core.add_request(f"msb-{tag}-{i}", prompt, self._params(requests[i].config), lora_request=lora)
                index[f"msb-{tag}-{i}"] = i
            while index and core.has_unfinished_requests() and not stop.is_set():
                for out in core.step():
                    if out.finished and out.request_id in index:
                        i = index.pop(out.request_id)
                        emit(i, self._completion(out, prompts[i], texts[i], requests[i].config.stop))
        finally:
            if index:  # cancelled or failed: leave nothing of ours in the engine
                core.abort_request(list(index))

    def _completion(self, out: Any, prompt: list[int], text: str, stops: tuple[str, ...] = ()) -> Completion:
        """The reply as `hf:` makes it: decoded by our tokenizer, with the paper formats' cut, and ended
        before the first stop string (decoding is ours, so vLLM cannot match stop strings itself)."""
        gen = out.outputs[0]
        ids = list(gen.token_ids)
        reply = finish_reply(self.prompt_format, text, decode_reply(self.prompt_format, self.tokenizer, prompt, ids))
        reason = gen.finish_reason
        cut = min((i for i in (reply.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            reply, reason = reply[:cut], "stop"
        return Completion(text=reply, usage=Usage(len(prompt), len(ids)), finish_reason=reason)

    async def aclose(self) -> None:
        """Nothing to release here: the engine stays in the process table for the next model object
        on these weights and settings, until the process ends."""
