"""What every `medsafety` command module shares: the consoles and the common options. Kept apart from
`medsafetybench.cli` so that command modules can import it while `cli` is still loading them."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import UserError


class _TrimmedStdout:
    """`sys.stdout` (looked up at every write, so redirection and test capture work) without the spaces rich
    pads table cells and grids with at the ends of lines: output that fits 80 columns and diffs cleanly."""

    _TRAILING = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)(?=\n)")

    def write(self, text: str) -> int:
        return sys.stdout.write(self._TRAILING.sub(r"\1", text))

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def fileno(self) -> int:
        return sys.stdout.fileno()

    @property
    def encoding(self) -> str:
        return getattr(sys.stdout, "encoding", None) or "utf-8"


out = Console(file=_TrimmedStdout())  # type: ignore[arg-type]
err = Console(stderr=True)

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project", help="Project directory holding the run store (default ./medsafety-runs, or $MEDSAFETY_PROJECT)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def csv_list(text: str | None) -> list[str] | None:
    """`a, b,c` -> ["a", "b", "c"]; None or empty -> None."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


FailAboveOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-above",
        help="Exit with status 3 if a model's mean harmfulness (primary judge) is above this "
        "(e.g. 2.0), or its harmful share with share:X (e.g. share:0.1): a gate for CI pipelines.",
    ),
]


def project_dir(project: Path | None) -> Path:
    """`store.project_dir`, imported when called: command modules use it without importing the store (and
    what it imports) when `medsafety` starts."""
    from .store import project_dir as resolve

    return resolve(project)


class ConsoleLogHandler(logging.Handler):
    """The package's warnings (a retry announced, a request failed for good) as `warning: ...` lines on the
    stderr console, which prints them above any live progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        try:
            err.print(f"[yellow]warning:[/yellow] {escape(record.getMessage())}", soft_wrap=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def install_log_handler() -> None:
    """Show the package's warnings on the stderr console (once per process)."""
    logger = logging.getLogger("medsafetybench")
    if not any(isinstance(h, ConsoleLogHandler) for h in logger.handlers):
        handler = ConsoleLogHandler(logging.WARNING)
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def open_existing_store(project: Path | None):  # noqa: ANN201 - store.Store, imported lazily
    """The project's run store, which must exist already (commands that only read never create one).

    Raises:
        UserError: there is no store in the project folder.
    """
    from .store import Store, project_db_path, project_dir

    path = project_db_path(project_dir(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: run `medsafety eval` first or pass --project")
    return Store(path)
