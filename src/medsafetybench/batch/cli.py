"""`medsafety batches` (list the batches a project has open at providers) and `medsafety batches cancel ID`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..cli_common import JsonOpt, ProjectOpt, err, out
from ..errors import UserError


def _store(project: Path | None):  # type: ignore[no-untyped-def]
    from ..store import Store, project_db_path, project_dir

    path = project_db_path(project_dir(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: run `medsafety eval --batch` first or pass --project")
    return Store(path)


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")


async def _cancel(identity: str, remote_id: str) -> str:
    from ..models import load_model
    from .providers import provider_for

    model = load_model(identity)
    provider = provider_for(model)
    try:
        return (await provider.cancel(remote_id)).status
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("openai", "anthropic"):
            raise
        raise UserError(f"cannot cancel batch {remote_id}: {type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        await provider.aclose()
        await model.aclose()


def register(app: typer.Typer) -> None:
    batches_app = typer.Typer(rich_markup_mode=None, help="Batches sent to providers by `--batch` runs.")

    @batches_app.callback(invoke_without_command=True)
    def list_cmd(
        ctx: typer.Context,
        project: ProjectOpt = None,
        all_: Annotated[bool, typer.Option("--all", help="Also batches already collected or abandoned.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """List open batches (submitted, not yet collected: a re-run of the same command resumes them)."""
        if ctx.invoked_subcommand is not None:
            return
        from ..report.console import fit_table
        from .store import BatchStore

        with _store(project) as store:
            rows = BatchStore(store).all_batches() if all_ else BatchStore(store).open_batches()
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "provider": r.provider,
                            "model": r.model_identity,
                            "remote_id": r.remote_id,
                            "state": r.state,
                            "remote_status": r.remote_status,
                            "requests": r.n_requests,
                            "round": r.round,
                            "created_at": r.created_at,
                            "note": r.note,
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
            return
        if not rows:
            out.print("no open batches" if not all_ else "no batches")
            return
        cells = [
            [
                r.id,
                r.remote_id or "-",
                r.provider,
                r.model_identity,
                str(r.n_requests),
                r.state,
                r.remote_status or "-",
                _when(r.created_at),
            ]
            for r in rows
        ]
        out.print(
            fit_table(
                "Batches",
                ("id", "provider id", "provider", "model", "requests", "state", "status", "created"),
                cells,
                out.width,
            )
        )

    @batches_app.command("cancel")
    def cancel_cmd(
        batch: Annotated[str, typer.Argument(help="Batch id (local or the provider's), or a unique prefix.")],
        project: ProjectOpt = None,
    ) -> None:
        """Ask the provider to cancel a batch. What it finished is still stored by the next run of the same
        command (which submits the rest in a new batch)."""
        from .store import BatchStore

        with _store(project) as store:
            batches = BatchStore(store)
            rec = batches.find(batch)
            if rec.state not in ("preparing", "submitted"):
                raise UserError(f"batch {rec.id} is {rec.state}: nothing to cancel")
            if rec.remote_id is None:
                batches.close(rec.id, "abandoned", "cancelled before it reached the provider")
                out.print(f"batch {rec.id} never reached the provider: marked abandoned")
                return
            status = asyncio.run(_cancel(rec.model_identity, rec.remote_id))
            batches.set_status(rec.id, status, "cancel requested")
        out.print(
            f"cancel requested for batch {escape(rec.remote_id)} (provider status: {escape(status)}); re-run "
            "the evaluation to store what it finished and retry the rest"
        )
        err.print("note: the batch stays listed until a run collects it", soft_wrap=True)

    app.add_typer(batches_app, name="batches")
