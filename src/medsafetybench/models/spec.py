"""Model spec strings (what a user types), their safe display form, and `load_model`.

    openai:MODEL[@BASE_URL]      any OpenAI-compatible chat endpoint (key from OPENAI_API_KEY)
    anthropic:MODEL[@BASE_URL]   Claude over the Messages API (key from ANTHROPIC_API_KEY)
    hf:PATH_OR_HUB_ID[+ADAPTER]  local transformers model, optional LoRA adapter
    vllm:PATH_OR_HUB_ID[+ADAPTER] vLLM engine (optional extra), optional LoRA adapter served by vLLM
    NAME:...                     a backend added by a plug-in (see `registry.py`)

The prefix picks a backend class from the registry, and that class parses the rest. A base URL may
carry credentials (`http://user:secret@host/v1`, `?api_key=...`): `ModelSpec` keeps the full URL for
the client, but `str(spec)` and `repr(spec)` are the safe display form (no userinfo, no secret
query parameters), and that form is what callers print and store (`runs.model_spec`).

`load_model(spec, engine="ray", replicas=N)` serves a local (hf:/vllm:) spec from N Ray actors instead
of this process (`ray_engine.RayChatModel`), under the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from .base import ChatModel
from .redact import redact_text, safe_url
from .registry import backend_class, backend_names, is_backend


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec.

    `base_url` is the URL as given, credentials included, for the client only; everything shown or
    stored uses `str(spec)` (the same as `spec.display`), which drops them.
    """

    backend: str
    """Registry name of the backend (`openai`, `hf`, `vllm`, or a plug-in's)."""
    name: str
    """Model name (openai) or path / hub id (hf, vllm)."""
    base_url: str | None = field(default=None, repr=False)
    """The endpoint as typed, possibly with credentials: never print or store it."""
    adapter: str | None = None
    """A LoRA adapter path (hf)."""

    @property
    def display(self) -> str:
        """The spec without credentials: what to print, log, store and put in reports."""
        s = f"{self.backend}:{self.name}"
        if self.adapter:
            s += f"+{self.adapter}"
        if self.base_url:
            s += f"@{safe_url(self.base_url)}"
        return s

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"ModelSpec({self.display!r})"


def redact_spec(text: str) -> str:
    """The safe display form of a spec string (parsed when possible, else regex-redacted): use it
    wherever a spec typed by a user is stored or shown."""
    try:
        return parse_spec(text).display
    except UserError:
        return redact_text(text)


def parse_spec(text: str) -> ModelSpec:
    """Parse `openai:gpt-4o-mini`, `openai:m@http://localhost:8000/v1`, `hf:/p`, `hf:/p+/adapter`, ...

    Args:
        text: a model spec as typed.

    Returns:
        The parsed spec (nothing is loaded or checked on disk; see `validate_spec`).

    Raises:
        UserError: no or an unknown backend prefix, or a tail the backend cannot parse.
    """
    shown = redact_text(text or "")
    if not text or ":" not in text:
        raise UserError(f"model spec '{shown}' has no backend: write e.g. openai:gpt-4o-mini, "
                        "hf:/path/to/model or vllm:/path/to/model")
    backend, rest = text.split(":", 1)
    backend = backend.strip().lower()
    if not backend or not is_backend(backend):
        raise UserError(f"model spec '{shown}': unknown backend '{backend}'; use one of "
                        + ", ".join(f"{b}:" for b in backend_names()))
    if not rest:
        raise UserError(f"model spec '{shown}' names no model after '{backend}:'")
    cls = backend_class(backend)
    parse_tail = getattr(cls, "parse_tail", None)
    if parse_tail is None:
        return ModelSpec(backend, rest)
    return parse_tail(backend, rest, text)


def validate_spec(spec: str | ModelSpec) -> ModelSpec:
    """Parse a spec and check what can be checked without loading weights or starting an engine:
    local paths exist, optional extras are installed, URLs are well formed. Call it before creating
    anything on disk, so a typo leaves nothing behind.

    Raises:
        UserError: the spec cannot work, with a message that says why.
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    check = getattr(backend_class(parsed.backend), "check_spec", None)
    if check is not None:
        check(parsed)
    return parsed


def load_model(spec: str | ModelSpec, *, engine: str | None = None, replicas: int = 1,
               ray_address: str | None = None, num_gpus: float | None = None, **options: Any) -> ChatModel:
    """Build the backend for `spec`.

    Args:
        spec: a model spec string or a parsed `ModelSpec`.
        engine: `local` (default: the backend in this process), `ray` or `ray:ADDRESS` (the backend in
            `replicas` Ray actors, `models.ray_engine.RayChatModel`; same identity, so the same cache).
        replicas: Ray replicas (engine ray only).
        ray_address: Ray cluster address; overrides the one in `engine`.
        num_gpus: GPUs per Ray replica (default: see `RayChatModel`).
        **options: settings for the backend (concurrency, timeout, batch_size, prompt_format, ...).
            Each backend takes only the names in its `OPTIONS`; others, and None values, are ignored,
            so callers can pass the CLI's settings to any backend.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if engine is not None or replicas != 1:
        from .ray_engine import RayChatModel, parse_engine

        name, address = parse_engine(engine)
        if name == "ray":
            # where this machine sees the weights it names the identity itself, and the replicas start on
            # the first request (a fully cached run starts none); elsewhere they start now and name it
            try:
                identity: str | None = model_identity(spec, **options)
            except UserError:
                identity = None
            return RayChatModel(spec, options, replicas=replicas, address=ray_address or address,
                                num_gpus=num_gpus, identity=identity, start=identity is None)
        if replicas != 1:
            raise UserError(f"--replicas {replicas} needs --engine ray (the local engine runs one copy of the model)")
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
        raise UserError(f"the {spec.backend}: backend cannot name a model's identity without loading it "
                        f"({spec.display})")
    wanted = getattr(cls, "OPTIONS", frozenset())
    return identity_for(spec, **{k: v for k, v in options.items() if k in wanted and v is not None})
