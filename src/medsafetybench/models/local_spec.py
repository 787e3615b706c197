"""Spec tails and checks shared by the local-weight backends (`hf:`, `vllm:`).

`PATH_OR_HUB_ID[+ADAPTER]`: a name with the shape of a hub id (`name` or `org/name`) is taken as one
(it needs network access or a local hub cache at load time); anything else is a local path that
must be a directory written by `save_pretrained`. `check_local_spec` applies these rules and checks
that the backend's optional packages are installed, without importing them or loading anything.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

from ..errors import MissingExtra, UserError
from .redact import redact_text
from .spec import ModelSpec

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def looks_like_path(name: str) -> bool:
    """True unless `name` has the shape of a hub id (`name` or `org/name`)."""
    return not _HUB_ID.match(name) or name.startswith(".") or "\\" in name


def local_dir(name: str, what: str) -> Path | None:
    """The resolved directory `name` names, or None for a hub id.

    Raises:
        UserError: `name` is a file, or looks like a path that does not exist.
    """
    p = Path(name).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.exists():
        raise UserError(f"{what} '{name}' is a file, not a directory: give the folder that save_pretrained wrote")
    if looks_like_path(name):
        raise UserError(
            f"{what} '{name}' does not exist: give a directory written by save_pretrained "
            "(or a hub id like org/name, which needs network access)"
        )
    return None


def parse_local_tail(backend: str, tail: str, text: str, *, adapters: bool) -> ModelSpec:
    """Parse `PATH_OR_HUB_ID[+ADAPTER]` (no adapter unless `adapters`)."""
    name, _, adapter = tail.partition("+")
    if not name:
        raise UserError(f"model spec '{redact_text(text)}' names no model before '+'")
    if adapter and not adapters:
        raise UserError(
            f"model spec '{redact_text(text)}': {backend}: takes no adapter; merge it first "
            "(medsafety finetune --merge) or use hf:BASE+ADAPTER"
        )
    return ModelSpec(backend, name, adapter=adapter or None)


def check_local_spec(spec: ModelSpec, *, extra: str, modules: Sequence[str], purpose: str) -> None:
    """Model and adapter paths exist (hub ids pass) and `modules` are importable (not imported)."""
    local_dir(spec.name, "model path")
    if spec.adapter:
        local_dir(spec.adapter, "adapter path")
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingExtra(extra, module, purpose)
