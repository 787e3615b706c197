"""The `hf:` backend: a local transformers causal LM (optionally with a LoRA adapter), batched.

`HFChatModel` loads through the same `from_pretrained` path for local directories and hub ids, renders
each chat with a prompt format (`formats.py`), groups requests that share a `GenerationConfig`, sorts
each group by prompt length (less padding), and generates left-padded batches: greedy when
temperature is 0, else sampling seeded by the config's seed (sampled outputs then depend on the batch
they were in). A batch that runs out of memory is split in half and retried. Outputs come back in
input order; `on_result` fires on the event-loop thread after each batch while `generate` runs in a worker thread.

Greedy batched decoding gives the same tokens as one-at-a-time decoding (left padding, attention mask
and position ids derived from the mask; tests pin it on the tiny model). On GPUs, bf16 kernels may
pick different reduction orders for different batch shapes, so rare ties can still flip there.

`identity` names the weights, not just the path: `hf:PATH[+ADAPTER]|fmt=FORMAT|w=FINGERPRINT` (FORMAT
resolved: `paper` becomes the family's `paper-*`), where
the fingerprint hashes config/tokenizer files and the names, sizes, first and last MiB of every
weight file, so rebuilt weights never hit stale cache entries.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingExtra, UserError
from .base import ChatRequest, Completion, GenerationConfig, ResultCallback, Usage
from .formats import check_format, decode_reply, encode_prompt, finish_reply, render_prompt, resolve_format
from .spec import ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SMALL_FILES = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
               "chat_template.json", "tokenizer.model", "model.safetensors.index.json")
_MIB = 1 << 20
_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "half": "float16"}


def _import_hf() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtra("hf", exc.name or "torch/transformers", "The hf: model backend") from exc
    transformers.utils.logging.disable_progress_bar()  # our own progress bars report the work
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


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def _looks_like_path(name: str) -> bool:
    """True unless `name` has the shape of a hub id (`name` or `org/name`)."""
    return not _HUB_ID.match(name) or name.startswith(".") or "\\" in name


@dataclass(frozen=True)
class _Source:
    """Where weights come from: a resolved local directory, or a hub id."""

    ref: str  # what from_pretrained gets
    local: Path | None

    @classmethod
    def resolve(cls, name: str, what: str) -> _Source:
        p = Path(name).expanduser()
        if p.is_dir():
            return cls(str(p.resolve()), p.resolve())
        if p.exists():
            raise UserError(f"{what} '{name}' is a file, not a directory: give the folder that "
                            "save_pretrained wrote")
        if _looks_like_path(name):
            raise UserError(f"{what} '{name}' does not exist: give a directory written by save_pretrained "
                            "(or a hub id like org/name, which needs network access)")
        return cls(name, None)

    def fingerprint(self) -> str:
        if self.local is not None:
            return weights_fingerprint(self.local)
        try:  # a hub id already in the local cache: fingerprint its snapshot
            from huggingface_hub import snapshot_download

            return weights_fingerprint(Path(snapshot_download(self.ref, local_files_only=True)))
        except Exception:
            return "hub"


class HFChatModel:
    """A transformers causal LM behind the `ChatModel` interface (see module docstring)."""

    def __init__(self, path: str | Path, adapter: str | Path | None = None, *, prompt_format: str = "chat",
                 batch_size: int = 8, device: str | None = None, dtype: str | None = None) -> None:
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1 (got {batch_size})")
        if dtype is not None and dtype != "auto" and dtype not in _DTYPES:
            raise UserError(f"--dtype '{dtype}' is not known: use one of auto, {', '.join(_DTYPES)}")
        self.prompt_format = check_format(prompt_format)
        self.source = _Source.resolve(str(path), "model path")
        self.adapter = _Source.resolve(str(adapter), "adapter path") if adapter else None
        self.prompt_format = resolve_format(self.prompt_format, self.source.ref, self.source.local)
        self.batch_size = batch_size
        self._device_opt, self._dtype_opt = device, dtype
        self.model: Any = None
        self.tokenizer: Any = None
        self._identity: str | None = None
        self._lock = threading.Lock()  # one generate at a time: seeds are global, memory is finite

    @classmethod
    def from_spec(cls, spec: ModelSpec, **options: Any) -> HFChatModel:
        """Build and load from a parsed `hf:` spec; options it does not know are ignored."""
        kwargs = {k: options[k] for k in ("prompt_format", "batch_size", "device", "dtype")
                  if options.get(k) is not None}
        model = cls(spec.name, spec.adapter, **kwargs)
        model.load()
        return model

    @property
    def identity(self) -> str:
        if self._identity is None:
            w = self.source.fingerprint()
            name = self.source.ref
            if self.adapter is not None:
                name += "+" + self.adapter.ref
                w += "." + self.adapter.fingerprint()
            self._identity = f"hf:{name}|fmt={self.prompt_format}|w={w}"
        return self._identity

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
            tok = transformers.AutoTokenizer.from_pretrained(ref, padding_side="left")
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
                raise UserError(f"could not load adapter '{self.adapter.ref}': "
                                f"{str(exc).splitlines()[0]}") from exc
        if tok.pad_token_id is None:
            if tok.eos_token_id is None:
                raise UserError(f"the tokenizer of '{ref}' has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        self.device = device
        self.model = model.to(device).eval()
        self.tokenizer = tok
        self._torch, self._transformers = torch, transformers
        # fail early (e.g. no chat template) rather than in the middle of a run
        self._prompt_ids(ChatRequest.simple("ping"))

    def _prompt_text(self, request: ChatRequest) -> str:
        return render_prompt(self.prompt_format, request.messages, self.tokenizer)

    def _prompt_ids(self, request: ChatRequest) -> list[int]:
        return encode_prompt(self.tokenizer, self._prompt_text(request), self.prompt_format)

    async def generate(self, requests: Sequence[ChatRequest],
                       on_result: ResultCallback | None = None) -> list[Completion]:
        if self.model is None:
            await asyncio.to_thread(self.load)
        texts = [self._prompt_text(r) for r in requests]
        prompts = [encode_prompt(self.tokenizer, t, self.prompt_format) for t in texts]
        results: list[Completion | None] = [None] * len(requests)
        for batch in self._plan(requests, prompts):
            config = requests[batch[0]].config
            outs = await asyncio.to_thread(self._generate_safely, [prompts[i] for i in batch], config)
            for i, completion in zip(batch, outs, strict=True):
                completion.text = finish_reply(self.prompt_format, texts[i], completion.text)
                results[i] = completion
                if on_result is not None:
                    on_result(i, completion)
        return [r for r in results if r is not None]

    def _plan(self, requests: Sequence[ChatRequest], prompts: list[list[int]]) -> list[list[int]]:
        """Batches of request indices: equal configs together, sorted by prompt length within."""
        groups: dict[GenerationConfig, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(r.config, []).append(i)
        batches = []
        for idx in groups.values():
            idx.sort(key=lambda i: (len(prompts[i]), i))
            batches += [idx[s:s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        return batches

    def _generate_safely(self, prompts: list[list[int]], config: GenerationConfig) -> list[Completion]:
        """One batch under the model lock; on out-of-memory, halve the batch (a single prompt that
        still does not fit comes back as a failed Completion, to be retried by a later run)."""
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
            half = len(prompts) // 2
            return self._generate_safely(prompts[:half], config) + self._generate_safely(prompts[half:], config)

    def _generate_batch(self, prompts: list[list[int]], config: GenerationConfig) -> list[Completion]:
        torch, tok = self._torch, self.tokenizer
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        eos = self.eos_ids()
        # A fresh config: the checkpoint's own sampling defaults (e.g. temperature 0.6) never leak in.
        gen = self._transformers.GenerationConfig(
            max_new_tokens=config.max_new_tokens, pad_token_id=pad, eos_token_id=eos or None,
            bos_token_id=tok.bos_token_id, do_sample=config.temperature > 0)
        if config.temperature > 0:
            gen.temperature, gen.top_p, gen.top_k = config.temperature, config.top_p, 0
            if config.seed is not None:
                torch.manual_seed(config.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen)
        completions = []
        for p, row in zip(prompts, out[:, width:].tolist(), strict=True):
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            new = row if stop is None else row[: stop + 1]
            text = decode_reply(self.prompt_format, tok, p, new)
            completions.append(Completion(text=text, usage=Usage(len(p), len(new)),
                                          finish_reason="length" if stop is None else "stop"))
        return completions

    def eos_ids(self) -> list[int]:
        """Token ids that end a reply (the generation config's, else the tokenizer's)."""
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        if ids is None:
            ids = self.tokenizer.eos_token_id
        if ids is None:
            return []
        return list(ids) if isinstance(ids, (list, tuple)) else [ids]

    async def aclose(self) -> None:
        self.model = None
        self.tokenizer = None
