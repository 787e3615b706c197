"""`medsafety import-inspect LOG` and `medsafety export-inspect RUN`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..cli_common import ProjectOpt, out
from ..errors import require


def register(app: typer.Typer) -> None:
    @app.command("import-inspect")
    def import_cmd(
        log: Annotated[
            Path, typer.Argument(help="An inspect eval log of the medsafetybench/medsafety task (.eval or .json).")
        ],
        name: Annotated[str | None, typer.Option("--name", help="A short name for the run.")] = None,
        project: ProjectOpt = None,
    ) -> None:
        """File an inspect log as a run (responses and judgements keyed as ours), so show, compare, report,
        labels and studies work on it."""
        require("inspect_ai", "inspect", "Reading inspect logs")
        from ..store import Store, project_dir
        from .logs import _read, import_inspect_log

        _read(log)  # a bad file fails before the project folder is touched
        with Store.open_project(project_dir(project)) as store:
            run_id, n_resp, n_judge = import_inspect_log(store, log, name=name)
            info = store.run(run_id)
        out.print(
            f"run {run_id} ({escape(info.label)}): {info.n_items} items, {n_resp} new responses, "
            f"{n_judge} new judgements (judges: {escape(', '.join(info.judges) or '-')})"
        )

    @app.command("export-inspect")
    def export_cmd(
        run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
        out_path: Annotated[Path, typer.Option("--out", "-o", help="Log file to write (.eval or .json).")],
        judge: Annotated[
            str | None, typer.Option("--judge", help="Judge identity to export (default: the run's primary judge).")
        ] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Write a run as an inspect eval log (`inspect view` opens it; `import-inspect` reads it back)."""
        require("inspect_ai", "inspect", "Writing inspect logs")
        from ..cli_common import open_existing_store
        from .logs import export_inspect_log

        with open_existing_store(project) as store:
            path = export_inspect_log(store, run, out_path, judge)
        out.print(f"wrote {escape(str(path))}")
