"""Building a model from a spec: `load_model` (the backend in this process) and `model_identity`
(what that model's identity would be, without loading it). The backend class comes from the registry
by the spec's prefix; this module imports no backend itself.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .base import ChatModel
from .registry import backend_class
from .spec import ModelSpec, parse_spec


def load_model(spec: str | ModelSpec, **options: Any) -> ChatModel:
    """Build the backend for `spec` in this process (`engine.load_on_engine` serves it from Ray replicas).

    Args:
        spec: a model spec string or a parsed `ModelSpec`.
        **options: settings for the backend (concurrency, timeout, batch_size, prompt_format, ...).
            Each backend takes only the names in its `OPTIONS`; others, and None values, are ignored,
            so callers can pass the CLI's settings to any backend.

    Returns:
        The loaded model.
    """
    if options.get("engine") not in (None, "local") or options.get("replicas", 1) != 1:
        raise UserError(
            "load_model builds the model in this process; for --engine ray (and --replicas) use "
            "medsafetybench.models.engine.load_on_engine"
        )
    if isinstance(spec, str):
        spec = parse_spec(spec)
    cls = backend_class(spec.backend)
    wanted = getattr(cls, "OPTIONS", frozenset())
    return cls.from_spec(spec, **{k: v for k, v in options.items() if k in wanted and v is not None})


def model_identity(spec: str | ModelSpec, **options: Any) -> str:
    """What `load_model(spec, **options).identity` would be, without loading weights, starting an
    engine or making a network call (hf:/vllm: fingerprint the files).

    Raises:
        UserError: the spec is invalid, or its backend cannot tell its identity without loading
            (it has no `identity_for` classmethod).
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    cls = backend_class(spec.backend)
    identity_for = getattr(cls, "identity_for", None)
    if identity_for is None:
        raise UserError(
            f"the {spec.backend}: backend cannot name a model's identity without loading it ({spec.display})"
        )
    wanted = getattr(cls, "OPTIONS", frozenset())
    return identity_for(spec, **{k: v for k, v in options.items() if k in wanted and v is not None})
