"""Name registries: a name a user types -> a class, imported on first use.

One `Registry` holds the built-in entries as `"module:attr"` strings (so nothing heavy is imported
until a name is asked for), classes added at run time with the `register(name)` decorator, and
plug-ins from other packages, found through an entry-point group:

    # pyproject.toml of a plug-in package
    [project.entry-points."medsafetybench.backends"]
    ray = "my_pkg.ray_backend:RayChatModel"

Lookup order: a class already registered by the decorator, the built-in table, then the entry-point
group. There is no third way: a built-in entry is one line in its table. All lookups hold one lock, so threads never
import
half a module twice. The model registry (`models/registry.py`) and the judge registry
(`judging/registry.py`) are the two instances.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Registry:
    """A thread-safe name -> class table with lazy imports and an entry-point group.

    Args:
        kind: what the entries are, for messages ("model backend", "judge").
        table: the built-in entries, name -> "module:attr"; the dict is kept (not copied), so the
            module that owns it can show it as its public table.
        group: the entry-point group plug-ins use.
    """

    def __init__(self, kind: str, table: dict[str, str], group: str) -> None:
        self.kind = kind
        self.table = table
        self.group = group
        self._classes: dict[str, Any] = {}
        self._lock = threading.RLock()

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make the class available under `name` (lower case, [a-z0-9_])."""
        key = self._check_name(name)

        def decorate(cls: type[T]) -> type[T]:
            with self._lock:
                self._classes[key] = cls
                self.table.setdefault(key, f"{cls.__module__}:{cls.__qualname__}")
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Forget a class added with `register` (tests use it to clean up)."""
        with self._lock:
            self._classes.pop(name, None)

    def names(self) -> list[str]:
        """Every name this registry can resolve without importing anything: built-ins, registered
        classes and entry points."""
        with self._lock:
            return sorted(set(self.table) | set(self._classes) | set(self._entry_points()))

    def known(self, name: str) -> bool:
        """True if `name` is an entry (no import happens)."""
        key = name.strip().lower()
        with self._lock:
            return key in self._classes or key in self.table or key in self._entry_points()

    def get(self, name: str) -> Any:
        """The class for `name`, importing its module on first use; unknown names are UserErrors."""
        key = name.strip().lower()
        with self._lock:
            if key in self._classes:
                return self._classes[key]
            ref = self.table.get(key) or self._entry_points().get(key)
            if ref is None:
                raise UserError(f"unknown {self.kind} '{name}'; use one of {', '.join(self.names())}")
            cls = self._import(key, ref)
            self._classes[key] = cls
            return cls

    # -- internals ---------------------------------------------------------------------------------
    def _check_name(self, name: str) -> str:
        key = name.strip().lower()
        if not _NAME.match(key):
            raise ValueError(f"{self.kind} name {name!r} must match [a-z][a-z0-9_-]*")
        return key

    def _entry_points(self) -> dict[str, str]:
        try:
            return {ep.name.lower(): ep.value for ep in entry_points(group=self.group)}
        except Exception:  # noqa: BLE001 - a broken installed distribution must not break lookups
            return {}

    def _import(self, name: str, ref: str) -> Any:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise UserError(f"{self.kind} '{name}' ({ref}) cannot be imported: {exc}") from exc
            raise  # a missing dependency inside the module: its own message (MissingExtra) says more
        obj: Any = module
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part, None)
            if obj is None:
                raise UserError(f"{self.kind} '{name}': {module_name} has no attribute '{attr}'")
        return obj
