"""The model backend registry: the prefix of a model spec (`openai:`, `anthropic:`, `hf:`, `vllm:`) -> a backend class.

Built-in backends are listed as `"module:Class"` strings and imported on first use; a backend module
registers its class with `@register_backend(name)`; other packages add backends through the
`medsafetybench.backends` entry-point group. This module imports no backend, and backends import
it (and `spec.py`), never the other way round.

A backend class provides:

- `OPTIONS: ClassVar[frozenset[str]]`: the keyword options it uses. `load_model` passes it only
  those, so callers can hand the CLI's settings to any backend.
- `from_spec(spec, **options) -> ChatModel`: build (and load) the model.
- optionally `parse_tail(backend, tail, text) -> ModelSpec`: parse what follows `backend:` (the
  default makes the whole tail the model name), and `check_spec(spec) -> None`: raise `UserError`
  for a spec that cannot work (a missing path, a missing extra) without loading anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from ..registry import Registry

T = TypeVar("T")

#: Built-in backends: spec prefix -> "module:Class".
BACKENDS: dict[str, str] = {
    "openai": "medsafetybench.models.openai_backend:OpenAIChatModel",
    "anthropic": "medsafetybench.models.anthropic_backend:AnthropicChatModel",
    "hf": "medsafetybench.models.hf_backend:HFChatModel",
    "vllm": "medsafetybench.models.vllm_backend:VLLMChatModel",
}
ENTRY_POINT_GROUP = "medsafetybench.backends"

_REGISTRY = Registry("model backend", BACKENDS, ENTRY_POINT_GROUP)


class BackendClass(Protocol):
    """What `load_model` needs from a backend class (see the module docstring for the optional parts)."""

    OPTIONS: ClassVar[frozenset[str]]

    @classmethod
    def from_spec(cls, spec: Any, **options: Any) -> Any: ...


def register_backend(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: serve specs `NAME:...` with this class."""
    return _REGISTRY.register(name)


def unregister_backend(name: str) -> None:
    """Forget a backend registered at run time (for tests)."""
    _REGISTRY.unregister(name)


def backend_class(name: str) -> Any:
    """The class behind a spec prefix, imported on first use; an unknown name is a `UserError`."""
    return _REGISTRY.get(name)


def backend_names() -> list[str]:
    """Every spec prefix that can be resolved (built-ins, registered classes, entry points)."""
    return _REGISTRY.names()


def is_backend(name: str) -> bool:
    """True if `name` is a known spec prefix (imports nothing)."""
    return _REGISTRY.known(name)
