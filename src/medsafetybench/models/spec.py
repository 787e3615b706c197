"""Model spec strings (what a user types) as `ModelSpec` values, their safe display form, and the
checks that need no loading: a leaf that imports no backend (`loading.py` builds models from specs,
`engine.py` chooses where they run).

    openai:MODEL[@BASE_URL]      any OpenAI-compatible chat endpoint (key from OPENAI_API_KEY)
    anthropic:MODEL[@BASE_URL]   Claude over the Messages API (key from ANTHROPIC_API_KEY)
    hf:PATH_OR_HUB_ID[+ADAPTER]  local transformers model, optional LoRA adapter
    vllm:PATH_OR_HUB_ID[+ADAPTER] vLLM engine (optional extra), optional LoRA adapter served by vLLM
    NAME:...                     a backend added by a plug-in (see `registry.py`)

The prefix picks a backend class from the registry, and that class parses the rest. A base URL may
carry credentials (`http://user:secret@host/v1`, `?api_key=...`): `ModelSpec` keeps the full URL for
the client, but `str(spec)` and `repr(spec)` are the safe display form (no userinfo, no secret
query parameters), and that form is what callers print and store (`runs.model_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError
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
        raise UserError(
            f"model spec '{shown}' has no backend: write e.g. openai:gpt-4o-mini, "
            "hf:/path/to/model or vllm:/path/to/model"
        )
    backend, rest = text.split(":", 1)
    backend = backend.strip().lower()
    if not backend or not is_backend(backend):
        raise UserError(
            f"model spec '{shown}': unknown backend '{backend}'; use one of "
            + ", ".join(f"{b}:" for b in backend_names())
        )
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
