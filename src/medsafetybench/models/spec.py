"""Model spec strings (what a user types) and the factory that turns one into a backend.

    openai:MODEL[@BASE_URL]      any OpenAI-compatible chat endpoint (key from OPENAI_API_KEY)
    hf:PATH_OR_HUB_ID[+ADAPTER]  local transformers model, optional LoRA adapter
    vllm:PATH_OR_HUB_ID[+ADAPTER] vLLM engine (optional extra), optional LoRA adapter served by vLLM
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
    return ModelSpec(backend, name, adapter=adapter or None)


def load_model(spec: str | ModelSpec, **options: Any) -> ChatModel:
    """Build the backend for `spec`. Options a backend does not use are ignored, so callers can pass
    the CLI's settings (concurrency, timeout, batch_size, prompt_format, ...) to any of them."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if spec.backend == "openai":
        from .openai_backend import OpenAIChatModel

        return OpenAIChatModel.from_spec(spec, **options)
    if spec.backend == "hf":
        from .hf_backend import HFChatModel

        return HFChatModel.from_spec(spec, **options)
    from .vllm_backend import VLLMChatModel

    return VLLMChatModel.from_spec(spec, **options)
