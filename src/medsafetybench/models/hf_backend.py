"""The `hf:` backend: a local transformers causal LM (optionally with a LoRA adapter), batched.

`HFChatModel` loads through the same `from_pretrained` path for local directories and hub ids, renders
each chat with a prompt format (`formats.py`), groups requests that share a `GenerationConfig`, sorts
each group longest prompt first (so an out-of-memory shows on the first batch), and cuts batches that
would pad a prompt to more than twice its length. Greedy when temperature is 0, else sampling seeded
by the config's seed (sampled outputs then depend on the batch they were in). A batch computes the KV
cache of its prompts' common token prefix (the system prompt, in an evaluation) once, on one row, and
decodes into a preallocated static cache; rows are laid out `[shared prefix | padding | own tail]`.
A batch that runs out of memory is split, and the smaller batch size is kept for the rest of the run.
Outputs come back in input order; `on_result` fires on the event-loop thread after each batch while
`generate` runs in a worker thread. A single prompt goes through plain `generate`, as in the paper's
scripts (`bench/hf_generation.py` measures one against the other).

Greedy batched decoding gives the same tokens as one-at-a-time decoding (padding masked, position ids
derived from the mask; tests pin it on the tiny model, with and without a shared system prompt and
adapter). On GPUs, bf16 kernels may pick different reduction orders for different batch shapes, so
rare ties can still flip there.

`identity` names the weights, not just the path: `hf:PATH[+ADAPTER]|fmt=FORMAT|w=FINGERPRINT` (FORMAT
resolved: `paper` becomes the family's `paper-*`), where
the fingerprint hashes config/tokenizer files and the names, sizes, first and last MiB of every
weight file, so rebuilt weights never hit stale cache entries.

`use_fast=False` asks transformers for the slow (Python / sentencepiece) tokenizer, as some
classifiers' official code does (WildGuard); the identity then ends in `|tok=slow`. transformers 5
builds a slow Llama/Mistral tokenizer only with `sentencepiece` installed and a `tokenizer.model` in
the folder; without them it returns the fast one, and the backend logs a warning saying so
(`tokenizer_is_fast` tells which one runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MissingExtra, UserError
from .base import ChatRequest, Completion, GenerationConfig, ResultCallback, Usage
from .capabilities import TokenLogprobs
from .formats import check_format, decode_reply, encode_prompt, finish_reply, render_prompt, resolve_format
from .local_spec import check_local_spec, local_dir, parse_local_tail
from .registry import register_backend
from .spec import ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SMALL_FILES = (
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model",
    "model.safetensors.index.json",
)
_MIB = 1 << 20
log = logging.getLogger(__name__)

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def _import_hf() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtra("hf", exc.name or "torch/transformers", "The hf: model backend") from exc
    from .hf_quiet import quiet_transformers

    quiet_transformers(transformers)  # our own progress bars report the work; see hf_quiet for the rest
    return torch, transformers


def weights_fingerprint(path: Path) -> str:
    """Short sha256 over a model/adapter directory's config and tokenizer files (whole) and each weight
    file's name, size and first and last MiB. Cheap for 100 GB checkpoints, sensitive to any rebuild."""
    h = hashlib.sha256()
    for name in SMALL_FILES:
        f = path / name
        if f.is_file():
            h.update(f"{name}\0".encode())
            h.update(f.read_bytes())
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)):
        size = f.stat().st_size
        h.update(f"{f.relative_to(path).as_posix()}\0{size}\0".encode())
        with f.open("rb") as fh:
            h.update(fh.read(_MIB))
            if size > _MIB:
                fh.seek(max(_MIB, size - _MIB))
                h.update(fh.read(_MIB))
    return h.hexdigest()[:16]


MIN_SHARED_PREFIX = 32  # tokens; shorter common prefixes are simply recomputed per row


def _shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the common token prefix of `prompts`, leaving every prompt at least one own token."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    k = 0
    while k < n and all(p[k] == first[k] for p in prompts):
        k += 1
    return k


@dataclass(frozen=True)
class _Source:
    """Where weights come from: a resolved local directory, or a hub id."""

    ref: str  # what from_pretrained gets
    local: Path | None

    @classmethod
    def resolve(cls, name: str, what: str) -> _Source:
        local = local_dir(name, what)
        return cls(str(local), local) if local is not None else cls(name, None)

    def fingerprint(self) -> str:
        if self.local is not None:
            return weights_fingerprint(self.local)
        try:  # a hub id already in the local cache: fingerprint its snapshot
            from huggingface_hub import snapshot_download

            return weights_fingerprint(Path(snapshot_download(self.ref, local_files_only=True)))
        except Exception:
            return "hub"


class _FrequencyPenalty:
    """vLLM's / OpenAI's frequency penalty as a transformers logits processor: each token's logit drops by
    `penalty` times the number of times it already occurs in the generated part (the prompt, the first
    `prompt_width` columns of the left-padded batch, does not count)."""

    def __init__(self, penalty: float, prompt_width: int) -> None:
        self.penalty, self.width = penalty, prompt_width

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = input_ids[:, self.width :]
        if generated.shape[1] == 0:
            return scores
        counts = scores.new_zeros(scores.shape)
        counts.scatter_add_(1, generated, scores.new_ones(generated.shape))
        return scores - self.penalty * counts


def _tok_suffix(use_fast: bool | None) -> str:
    """`|tok=slow` when the slow tokenizer is asked for (other identities are unchanged)."""
    return "|tok=slow" if use_fast is False else ""


def local_identity(backend: str, source: _Source, adapter: _Source | None, prompt_format: str) -> str:
    """`BACKEND:PATH[+ADAPTER]|fmt=FORMAT|w=FINGERPRINT[.ADAPTER_FINGERPRINT]`: a local model's identity."""
    name, w = source.ref, source.fingerprint()
    if adapter is not None:
        name, w = f"{name}+{adapter.ref}", f"{w}.{adapter.fingerprint()}"
    return f"{backend}:{name}|fmt={prompt_format}|w={w}"


@register_backend("hf")
class HFChatModel:
    """A transformers causal LM behind the `ChatModel` interface (see module docstring); also
    `SupportsLogprobs` and `SupportsContextLength` (`capabilities.py`)."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"prompt_format", "batch_size", "device", "dtype", "use_fast"})

    def __init__(
        self,
        path: str | Path,
        adapter: str | Path | None = None,
        *,
        prompt_format: str = "chat",
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | None = None,
        use_fast: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
        if dtype is not None and dtype != "auto" and dtype not in _DTYPES:
            raise UserError(f"--dtype '{dtype}' is not known: use one of auto, {', '.join(_DTYPES)}")
        self.prompt_format = check_format(prompt_format)
        self.source = _Source.resolve(str(path), "model path")
        self.adapter = _Source.resolve(str(adapter), "adapter path") if adapter else None
        self.prompt_format = resolve_format(self.prompt_format, self.source.ref, self.source.local)
        self.batch_size = batch_size
        self.max_batch = batch_size  # lowered for the rest of the run after an out-of-memory
        self._static_ok = True
        self._device_opt, self._dtype_opt = device, dtype
        self.use_fast = None if use_fast is None else bool(use_fast)
        self.tokenizer_is_fast: bool | None = None  # which tokenizer was loaded (None before `load`)
        self.model: Any = None
        self.tokenizer: Any = None
        self._identity: str | None = None
        self._lock = threading.Lock()  # one generate at a time: seeds are global, memory is finite

    @classmethod
    def parse_tail(cls, backend: str, tail: str, text: str) -> ModelSpec:
        """`PATH_OR_HUB_ID[+ADAPTER]`."""
        return parse_local_tail(backend, tail, text, adapters=True)

    @classmethod
    def check_spec(cls, spec: ModelSpec) -> None:
        """Local paths exist and the `hf` extra is installed; nothing is loaded."""
        check_local_spec(
            spec,
            extra="hf",
            modules=("torch", "transformers") + (("peft",) if spec.adapter else ()),
            purpose="The hf: model backend",
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> HFChatModel:
        """Build and load from a parsed `hf:` spec with the options in `OPTIONS` (others are ignored)."""
        kwargs = {k: options[k] for k in cls.OPTIONS if options.get(k) is not None}
        model = cls(spec.name, spec.adapter, **kwargs)
        model.load()
        return model

    @property
    def identity(self) -> str:
        if self._identity is None:
            self._identity = local_identity("hf", self.source, self.adapter, self.prompt_format) + _tok_suffix(
                self.use_fast
            )
        return self._identity

    @classmethod
    def validate(cls, spec: ModelSpec, **options: Any) -> None:
        """Cheap checks before a store is opened (nothing is loaded): the model and adapter paths
        exist (or are hub ids), the prompt format and batch size are valid. Raises UserError."""
        check_format(options.get("prompt_format") or "chat")
        if options.get("batch_size") is not None and options["batch_size"] < 1:
            raise UserError(f"--batch-size must be at least 1 (got {options['batch_size']})")
        _Source.resolve(spec.name, "model path")
        if spec.adapter:
            _Source.resolve(spec.adapter, "adapter path")

    @classmethod
    def identity_for(cls, spec: ModelSpec, **options: Any) -> str:
        """What `load_model(spec, **options).identity` would be, without loading any weights."""
        source = _Source.resolve(spec.name, "model path")
        adapter = _Source.resolve(spec.adapter, "adapter path") if spec.adapter else None
        fmt = resolve_format(options.get("prompt_format") or "chat", source.ref, source.local)
        return local_identity("hf", source, adapter, fmt) + _tok_suffix(options.get("use_fast"))

    def load(self) -> None:
        """Load tokenizer, model and adapter (idempotent); failures become UserErrors."""
        if self.model is not None:
            return
        torch, transformers = _import_hf()
        device = self._device_opt or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype_name = _DTYPES.get(self._dtype_opt or "", None)
        if dtype_name is None:
            dtype_name = "bfloat16" if device.startswith("cuda") else "float32"
        ref = self.source.ref
        try:
            fast = {} if self.use_fast is None else {"use_fast": self.use_fast}
            tok = transformers.AutoTokenizer.from_pretrained(ref, padding_side="left", **fast)
            model = transformers.AutoModelForCausalLM.from_pretrained(ref, dtype=getattr(torch, dtype_name))
        except (OSError, ValueError) as exc:
            hint = "" if self.source.local else " (hub ids need network access or a local hub cache)"
            raise UserError(f"could not load model '{ref}'{hint}: {str(exc).splitlines()[0]}") from exc
        if self.adapter is not None:
            try:
                from peft import PeftModel
            except ImportError as exc:
                raise MissingExtra("hf", "peft", "Loading a LoRA adapter") from exc
            try:
                model = PeftModel.from_pretrained(model, self.adapter.ref)
            except (OSError, ValueError) as exc:
                raise UserError(f"could not load adapter '{self.adapter.ref}': {str(exc).splitlines()[0]}") from exc
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise UserError(f"the tokenizer of '{ref}' has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        self.device = device
        self.model = model.to(device).eval()
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model
        # transformers 5.2x renamed forward's `past_key_values` to `cache`
        self._cache_kwarg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        self.tokenizer = tok
        self.tokenizer_is_fast = bool(getattr(tok, "is_fast", False))
        if self.use_fast is False and self.tokenizer_is_fast:
            log.warning(
                "hf:%s: a slow tokenizer was asked for (use_fast=False) but transformers loaded "
                "the fast one (a slow Llama/Mistral tokenizer needs sentencepiece and "
                "tokenizer.model)",
                ref,
            )
        self._torch, self._transformers = torch, transformers
        # fail early (e.g. no chat template) rather than in the middle of a run
        self._prompt_ids(ChatRequest.simple("ping"))

    def _prompt_text(self, request: ChatRequest) -> str:
        return render_prompt(self.prompt_format, request.messages, self.tokenizer)

    def _prompt_ids(self, request: ChatRequest) -> list[int]:
        return encode_prompt(self.tokenizer, self._prompt_text(request), self.prompt_format)

    async def generate(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[Completion]:
        if self.model is None:
            await asyncio.to_thread(self.load)
        texts = [self._prompt_text(r) for r in requests]
        prompts = [encode_prompt(self.tokenizer, t, self.prompt_format) for t in texts]
        results: list[Completion | None] = [None] * len(requests)
        for batch in self._plan(requests, prompts):
            config = requests[batch[0]].config
            while batch:  # an out-of-memory earlier in the run may have lowered the batch size since planning
                part, batch = batch[: self.max_batch], batch[self.max_batch :]
                outs = await asyncio.to_thread(self._generate_safely, [prompts[i] for i in part], config)
                for i, completion in zip(part, outs, strict=True):
                    completion.text = finish_reply(self.prompt_format, texts[i], completion.text)
                    results[i] = completion
                    if on_result is not None:
                        on_result(i, completion)
        return [r for r in results if r is not None]

    def _plan(self, requests: Sequence[ChatRequest], prompts: list[list[int]]) -> list[list[int]]:
        """Batches of request indices: equal configs together, longest prompt first (so an
        out-of-memory shows on the first batch), and a new batch when the current one is full or when
        the next prompt would be padded by more than half the batch's width (and by 64+ tokens)."""
        groups: dict[GenerationConfig, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.config, []).append(i)
        batches: list[list[int]] = []
        for idx in groups.values():
            idx.sort(key=lambda i: (-len(prompts[i]), i))
            current: list[int] = []
            for i in idx:
                width = len(prompts[current[0]]) if current else 0
                pad = width - len(prompts[i])
                if current and (len(current) >= self.batch_size or (pad > 64 and 2 * pad > width)):
                    batches.append(current)
                    current = []
                current.append(i)
            if current:
                batches.append(current)
        return batches

    def _generate_safely(self, prompts: list[list[int]], config: GenerationConfig) -> list[Completion]:
        """One batch under the model lock; on out-of-memory, halve the batch and keep the halved size
        for the rest of the run (a single prompt that still does not fit comes back as a failed
        Completion, to be retried by a later run)."""
        try:
            with self._lock:
                return self._generate_batch(prompts, config)
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            if "out of memory" not in str(exc).lower():
                raise
            if self.device.startswith("cuda"):
                self._torch.cuda.empty_cache()
            if len(prompts) == 1:
                return [Completion(text="", error=f"out of memory: {str(exc).splitlines()[0]}")]
            self.max_batch = min(self.max_batch, len(prompts) // 2)
            out: list[Completion] = []
            while len(out) < len(prompts):  # re-read max_batch: a part may lower it again
                out += self._generate_safely(prompts[len(out) : len(out) + self.max_batch], config)
            return out

    def _generate_batch(self, prompts: list[list[int]], config: GenerationConfig) -> list[Completion]:
        """One `generate` call. A single prompt goes through plain `generate` (what the paper's scripts
        do, once per prompt). A batch shares the KV cache of its common token prefix (e.g. the
        system prompt), computed once, and decodes into a preallocated (static) cache: rows are laid
        out `[shared prefix | padding | own tail]`, positions come from the attention mask."""
        torch, tok = self._torch, self.tokenizer
        pad = tok.pad_token_id
        shared = _shared_prefix(prompts) if len(prompts) > 1 else 0
        shared = shared if shared >= MIN_SHARED_PREFIX else 0
        tail = max(len(p) for p in prompts) - shared
        rows = [p[:shared] + [pad] * (tail - len(p) + shared) + p[shared:] for p in prompts]
        masks = [[1] * shared + [0] * (tail - len(p) + shared) + [1] * (len(p) - shared) for p in prompts]
        input_ids = torch.tensor(rows, device=self.device)
        mask = torch.tensor(masks, device=self.device)
        width = input_ids.shape[1]
        eos = self.eos_ids()
        # A fresh config: the checkpoint's own sampling defaults (e.g. temperature 0.6) never leak in.
        gen = self._transformers.GenerationConfig(
            max_new_tokens=config.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=eos or None,
            bos_token_id=tok.bos_token_id,
            do_sample=config.temperature > 0,
        )
        if config.temperature > 0:
            gen.temperature, gen.top_p, gen.top_k = config.temperature, config.top_p, 0
            if config.seed is not None:
                torch.manual_seed(config.seed)
        extra: dict[str, Any] = {}
        if config.frequency_penalty:
            extra["logits_processor"] = self._transformers.LogitsProcessorList(
                [_FrequencyPenalty(config.frequency_penalty, width)]
            )
        if config.stop:
            gen.stop_strings = list(config.stop)
            extra["tokenizer"] = tok
        with torch.inference_mode():
            cache = self._batch_cache(input_ids, shared, width + config.max_new_tokens) if len(prompts) > 1 else None
            if cache is not None:
                extra[self._cache_kwarg] = cache
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen, **extra)
        completions = []
        for p, row in zip(prompts, out[:, width:].tolist(), strict=True):
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            new = row if stop is None else row[: stop + 1]
            text = decode_reply(self.prompt_format, tok, p, new)
            reason = "length" if stop is None else "stop"
            cut = min((i for i in (text.find(s) for s in config.stop) if i >= 0), default=-1)
            if cut >= 0:  # as vLLM and the OpenAI API: the reply ends before the stop string
                text, reason = text[:cut], "stop"
                new = new[: len(tok(text, add_special_tokens=False)["input_ids"])] if text else []
            completions.append(Completion(text=text, usage=Usage(len(p), len(new)), finish_reason=reason))
        return completions

    def _batch_cache(self, input_ids: Any, shared: int, max_len: int) -> Any:
        """A static cache for the batch holding the shared prefix's keys and values (computed once,
        on one row), or None where this model takes no static cache (generate then makes its own)."""
        if not self._static_ok:
            return None
        try:
            cache = self._transformers.StaticCache(config=self.model.config, max_cache_len=max_len)
            if shared:
                out = self.model(input_ids=input_ids[:1, :shared], use_cache=True)
                prefix = getattr(out, "cache", None) or out.past_key_values
                rows = input_ids.shape[0]
                for layer, kv in enumerate(prefix.layers):
                    cache.update(kv.keys.expand(rows, -1, -1, -1), kv.values.expand(rows, -1, -1, -1), layer)
            return cache
        except (AttributeError, TypeError, ValueError, NotImplementedError):
            self._static_ok = False  # e.g. an architecture without static cache layers: plain generate
            return None

    def eos_ids(self) -> list[int]:
        """Token ids that end a reply (the generation config's, else the tokenizer's)."""
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return []
        return list(ids) if isinstance(ids, (list, tuple)) else [ids]

    # -- optional capabilities (capabilities.py) ---------------------------------------------------
    def context_length(self) -> int | None:
        """The model's `max_position_embeddings` (else the tokenizer's `model_max_length`)."""
        if self.model is None:
            self.load()
        n = getattr(self.model.config, "max_position_embeddings", None)
        if not n:
            n = getattr(self.tokenizer, "model_max_length", None)
        return int(n) if n and n < 10**8 else None

    def prompt_tokens(self, request: ChatRequest) -> int:
        """Exact: the prompt's token ids in this model's prompt format."""
        if self.model is None:
            self.load()
        return len(self._prompt_ids(request))

    async def first_token_logprobs(
        self, requests: Sequence[ChatRequest], candidates: Sequence[str] = (), top_k: int = 20
    ) -> list[TokenLogprobs]:
        """Exact log-probabilities of the first generated token, from one forward pass per batch of
        left-padded prompts (see `SupportsLogprobs`); prompts are sorted by length within batches."""
        if self.model is None:
            await asyncio.to_thread(self.load)
        prompts = [self._prompt_ids(r) for r in requests]
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
        results: list[TokenLogprobs | None] = [None] * len(prompts)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            outs = await asyncio.to_thread(
                self._logprob_batch, [prompts[i] for i in idx], tuple(candidates), max(1, int(top_k))
            )
            for i, out in zip(idx, outs, strict=True):
                results[i] = out
        return [r for r in results if r is not None]

    def _candidate_ids(self, candidates: Sequence[str]) -> dict[str, list[int]]:
        """Vocabulary ids whose decoded text, stripped, equals each stripped candidate (cached scan)."""
        by_text = getattr(self, "_vocab_by_text", None)
        if by_text is None:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            by_text = {}
            for i, t in enumerate(texts):
                by_text.setdefault(t.strip(), []).append(i)
            self._vocab_by_text = by_text
        return {c: by_text.get(c.strip(), []) for c in candidates}

    def _logprob_batch(self, prompts: list[list[int]], candidates: tuple[str, ...], top_k: int) -> list[TokenLogprobs]:
        torch, tok = self._torch, self.tokenizer
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cand_ids = self._candidate_ids(candidates)
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            top = logp.topk(min(top_k, logp.shape[-1]), dim=-1)
            out = []
            for row in range(len(prompts)):
                pairs = tuple(
                    (tok.decode([int(t)]), float(v))
                    for v, t in zip(top.values[row].tolist(), top.indices[row].tolist(), strict=True)
                )
                cands: dict[str, float | None] = {
                    c: (float(torch.logsumexp(logp[row, cand_ids[c]], dim=0)) if cand_ids[c] else None)
                    for c in candidates
                }
                out.append(TokenLogprobs(top=pairs, candidates=cands))
        return out

    async def aclose(self) -> None:
        self.model = None
        self.tokenizer = None
