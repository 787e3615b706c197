"""Lazy package exports (PEP 562): a package names what it exports and the submodule each lives in, and a
name's submodule is imported on first use. This keeps `import medsafetybench.<package>` (and so the
`medsafety` command, which imports every command module's package) from importing numpy, torch, inspect_ai
and the other heavy extras until a command needs them; `dir()` and `__all__` still show every export."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a package whose exports load on first use.

    Args:
        package: the package's `__name__`.
        exports: export name -> the submodule holding it, relative (".data") or absolute.
        namespace: the package's `globals()`; a loaded export is cached there.

    Returns:
        (`__getattr__`, `__dir__`) to assign at the package's top level.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
