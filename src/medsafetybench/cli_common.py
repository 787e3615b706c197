"""What every `medsafety` command module shares: the consoles and the common options. Kept apart from
`medsafetybench.cli` so that command modules can import it while `cli` is still loading them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .errors import UserError

out = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", help="Project directory holding the run store (default ./medsafety-runs, or $MEDSAFETY_PROJECT).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def csv_list(text: str | None) -> list[str] | None:
    """`a, b,c` -> ["a", "b", "c"]; None or empty -> None."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


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
