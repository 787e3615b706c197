"""Model backends behind one narrow interface (`ChatModel`), and `load_model(spec)` to build one
from a string a user can type: `openai:MODEL[@BASE_URL]`, `hf:PATH[+ADAPTER]`, `vllm:PATH`, or a
plug-in's `NAME:...` (see `registry.py`). Optional capabilities are Protocols in `capabilities.py`."""

from .base import ChatModel, ChatRequest, Completion, GenerationConfig, Message, Usage
from .capabilities import (
    SupportsConnectionKey,
    SupportsContextLength,
    SupportsLogprobs,
    TokenLogprobs,
)
from .loading import load_model, model_identity
from .registry import BACKENDS, backend_class, backend_names, register_backend
from .spec import ModelSpec, parse_spec, redact_spec, validate_spec

__all__ = [
    "ChatModel",
    "ChatRequest",
    "Completion",
    "GenerationConfig",
    "Message",
    "Usage",
    "ModelSpec",
    "load_model",
    "model_identity",
    "parse_spec",
    "validate_spec",
    "redact_spec",
    "BACKENDS",
    "register_backend",
    "backend_class",
    "backend_names",
    "SupportsLogprobs",
    "SupportsContextLength",
    "SupportsConnectionKey",
    "TokenLogprobs",
]
