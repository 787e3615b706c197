"""What every `medsafety` command module shares: the consoles and the common options. Kept apart from
`medsafetybench.cli` so that command modules can import it while `cli` is still loading them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

ProjectOpt = Annotated[Path | None, typer.Option(
    "--project", help="Project directory holding the run store (default ./medsafety-runs, or $MEDSAFETY_PROJECT).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
