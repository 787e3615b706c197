"""The two error types every module raises for problems a user can fix.

`UserError` carries a one-line message that names the file, row or option at fault and what to do;
the CLI prints it without a traceback and exits with status 2. `MissingExtra` is a `UserError` for an
optional dependency that is not installed, naming the extra to install.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: bad input, a missing file, an unknown option value."""


class MissingExtra(UserError):
    """An optional dependency is not installed."""

    def __init__(self, extra: str, module: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{module}' package: install it with pip install 'medsafetybench[{extra}]'"
        )
        self.extra = extra
        self.module = module


def require(module: str, extra: str, purpose: str):
    """Import `module` or raise `MissingExtra` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtra(extra, module, purpose) from exc
