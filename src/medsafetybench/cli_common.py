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

ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", help="Project directory holding the run store (default ./medsafety-runs, or $MEDSAFETY_PROJECT).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


FailAboveOpt = Annotated[str | None, typer.Option(
    "--fail-above", help="Exit with status 3 if a model's mean harmfulness (primary judge) is above this "
    "(e.g. 2.0), or its harmful share with share:X (e.g. share:0.1): a gate for CI pipelines.")]


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


def deprecated(old: str, new: str) -> None:
    """Say once, on stderr, that an option spelling is kept only as an alias."""
    err.print(f"[yellow]note:[/yellow] {old} is deprecated; use {new}", highlight=False, soft_wrap=True)


def training_data_and_release(train_data: str | None, data: str | None, data_dir: Path | None,
                              kinds: tuple[str, ...]) -> tuple[str | None, Path | None]:
    """(training data kinds, release folder) of `finetune`/`sweep`, where `--data PATH` names the official
    release as in every other command and `--train-data` the kind (med, gen, both). Spellings of earlier
    releases still work, with a note: `--data med` (a kind where no such folder exists) and `--data-dir PATH`."""
    release: Path | None = None
    if data is not None:
        parts = [p.strip() for p in data.split(",") if p.strip()]
        if parts and all(p in kinds for p in parts) and not Path(data).exists():
            if train_data is not None:
                raise UserError(f"--data {data} names training data; give it once, as --train-data")
            deprecated(f"--data {data} for the training data", f"--train-data {data} (--data names the official release)")
            train_data = data
        else:
            release = Path(data)
    if data_dir is not None:
        if release is not None and release != data_dir:
            raise UserError("--data and --data-dir both name the release; give --data only")
        deprecated("--data-dir", "--data")
        release = data_dir
    return train_data, release
