"""Model spec strings (what a user types) and the factory that turns one into a backend.

    openai:MODEL[@BASE_URL]      any OpenAI-compatible chat endpoint (key from OPENAI_API_KEY)
    hf:PATH_OR_HUB_ID[+ADAPTER]  local transformers model, optional LoRA adapter
    vllm:PATH_OR_HUB_ID          vLLM engine (optional extra)

`load_model(spec, engine="ray", replicas=N)` serves a local (hf:/vllm:) spec from N Ray actors instead
of this process (`ray_engine.RayChatModel`), under the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .base import ChatModel

BACKENDS = ("openai", "hf", "vllm")


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    name: str  # model name (openai) or path / hub id (hf, vllm)
    base_url: str | None = None
    adapter: str | None = None

    def __str__(self) -> str:
        s = f"{self.backend}:{self.name}"
        if self.adapter:
            s += f"+{self.adapter}"
        if self.base_url:
            s += f"@{self.base_url}"
        return s


def parse_spec(text: str) -> ModelSpec:
    """Parse `openai:gpt-4o-mini`, `openai:m@http://localhost:8000/v1`, `hf:/p`, `hf:/p+/adapter`."""
    if not text or ":" not in text:
        raise UserError(f"model spec '{text}' has no backend: write e.g. openai:gpt-4o-mini, "
                        "hf:/path/to/model or vllm:/path/to/model")
    backend, rest = text.split(":", 1)
    backend = backend.strip().lower()
    if backend not in BACKENDS:
        raise UserError(f"model spec '{text}': unknown backend '{backend}'; use one of "
                        + ", ".join(f"{b}:" for b in BACKENDS))
    if not rest:
        raise UserError(f"model spec '{text}' names no model after '{backend}:'")
    if backend == "openai":
        name, _, base_url = rest.partition("@")
        if not name:
            raise UserError(f"model spec '{text}' names no model before '@'")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise UserError(f"model spec '{text}': base URL '{base_url}' must start with http:// or https://")
        return ModelSpec("openai", name, base_url=base_url or None)
    name, _, adapter = rest.partition("+")
    if not name:
        raise UserError(f"model spec '{text}' names no model before '+'")
    if adapter and backend == "vllm":
        raise UserError(f"model spec '{text}': vllm: takes no adapter; merge it first "
                        "(medsafety finetune --merge) or use hf:BASE+ADAPTER")
    return ModelSpec(backend, name, adapter=adapter or None)


def load_model(spec: str | ModelSpec, *, engine: str | None = None, replicas: int = 1,
               ray_address: str | None = None, num_gpus: float | None = None, **options: Any) -> ChatModel:
    """Build the backend for `spec`. Options a backend does not use are ignored, so callers can pass
    the CLI's settings (concurrency, timeout, batch_size, prompt_format, ...) to any of them.

    Args:
        spec: a model spec string or a parsed `ModelSpec`.
        engine: `local` (default: the backend in this process), `ray` or `ray:ADDRESS` (the backend in
            `replicas` Ray actors, `models.ray_engine.RayChatModel`; same identity, so the same cache).
        replicas: Ray replicas (engine ray only).
        ray_address: Ray cluster address; overrides the one in `engine`.
        num_gpus: GPUs per Ray replica (default: see `RayChatModel`).
        **options: backend options.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if engine is not None or replicas != 1:
        from .ray_engine import RayChatModel, parse_engine

        name, address = parse_engine(engine)
        if name == "ray":
            return RayChatModel(spec, options, replicas=replicas, address=ray_address or address,
                                num_gpus=num_gpus)
        if replicas != 1:
            raise UserError(f"--replicas {replicas} needs --engine ray (the local engine runs one copy of the model)")
    if spec.backend == "openai":
        from .openai_backend import OpenAIChatModel

        return OpenAIChatModel.from_spec(spec, **options)
    if spec.backend == "hf":
        from .hf_backend import HFChatModel

        return HFChatModel.from_spec(spec, **options)
    from .vllm_backend import VLLMChatModel

    return VLLMChatModel.from_spec(spec, **options)
