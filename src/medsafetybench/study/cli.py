"""`medsafety study run | status | report | validate`, and `execute`, which `medsafety eval` shares: one
code path runs a study file and an evaluation typed on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..cli_common import FailAboveOpt, JsonOpt, ProjectOpt, err, out
from ..cost.cli import DryRunOpt, MaxCostOpt, PricesOpt
from ..errors import UserError

if TYPE_CHECKING:  # the medsafety command imports this module when it starts: keep that light
    from .results import Gate
    from .spec import Study

__all__ = ["FailAboveOpt", "execute", "register"]


def _leaderboard(store, outcome) -> None:
    from ..report.console import fit_table

    rows = []
    for r in sorted(
        outcome.results,
        key=lambda r: (
            r.outcome is None,
            r.outcome.summary.overall.harmfulness.value
            if r.outcome and r.outcome.summary.overall.harmfulness.value is not None
            else 9.0,
        ),
    ):
        if r.outcome is None:
            rows.append([r.model.name, "-", "-", "-", "-", "failed to load"])
            continue
        o = r.outcome.summary.overall
        rows.append(
            [
                r.model.name,
                r.model.group or "-",
                o.harmfulness.fmt(2),
                o.harmful_share.fmt(2),
                o.refusal_rate.fmt(2),
                f"{o.n_scored}/{r.outcome.summary.n_items}",
            ]
        )
    out.print(
        fit_table(
            f"Study {outcome.study.name}",
            ("model", "group", "harmfulness [95% CI]", "harmful share", "refusal rate", "scored"),
            rows,
            out.width,
            right=(2, 3, 4, 5),
        )
    )


def _calls(report, held: int) -> str:  # noqa: ANN001 - evaluation.stages.StageReport
    """A stage's requests for people, with those `--max-cost` held back (counted as failed) named."""
    return report.describe() + (f", {held} of them held back by --max-cost" if held else "")


def execute(
    study: Study,
    project: Path | None,
    *,
    as_json: bool,
    gate: Gate | None,
    retry_unscored: bool = False,
    only: list[str] | None = None,
    single: bool = False,
    note: str | None = None,
    dry_run: bool = False,
    max_cost: float | None = None,
    prices: Path | None = None,
    by_principle: bool = False,
    checked: bool = False,
) -> None:
    """Run a study (or an eval made into one) with progress, print results, exit with the documented status.
    `checked`: the caller (`eval`) has validated the model and judge specs already; they are not again.
    `--dry-run` prints the estimate instead (no key needed: nothing is called); `--max-cost` is checked
    against it before the store is opened."""
    from ..cost.budget import EXIT_COST
    from ..cost.cli import before_run
    from ..evaluation.preflight import check_specs
    from ..models.spec import redact_spec
    from ..report.console import RichProgress, judge_line, print_summary
    from ..store import Store, project_dir
    from .results import EXIT_OK, exit_status, result_json
    from .runner import run_study

    # judges (and the model of a single evaluation) and the items are checked before the store exists:
    # a bad --input, --split or --data creates nothing
    if not dry_run and not checked:
        check_specs([m.spec for m in study.models] if single else [], [j.spec for j in study.judges])
    items = study.items.load()
    budget = before_run(study, project, only=only, dry_run=dry_run, max_cost=max_cost, prices=prices, as_json=as_json)
    store = Store.open_project(project_dir(project))
    n = len(only) if only else len(study.models)

    def progress_for(m, k, total):
        if not single:
            err.print(f"[bold]{k}/{total}[/bold] {escape(m.name)} ({escape(redact_spec(m.spec))})")
        p = RichProgress(err, enabled=not as_json, prefix="" if single else "  ")
        return p.__enter__()

    def on_done(result) -> None:
        if as_json or result.outcome is None:
            return
        o = result.outcome
        for line in o.notes:
            err.print(f"[yellow]note:[/yellow] {escape(line)}", soft_wrap=True)
        if single:
            info = store.run(o.run_id)
            if by_principle:
                for identity, summary in o.summaries.items():
                    print_summary(out, summary, info, identity)
            else:  # the primary judge's block; one line per other judge; the tables behind --by-principle
                (first, summary), *others = o.summaries.items()
                print_summary(out, summary, info, first, detail=False)
                for identity, other in others:
                    out.print(f"other judge    {escape(judge_line(identity, other))}")
                out.print(f"by principle and source: add --by-principle, or `medsafety show {o.run_id[:12]}`")
            held = budget.refused if budget is not None else {"model": 0, "judge": 0}
            how = " (batch mode: through the providers' batch APIs where they have one)" if study.batch else ""
            out.print(
                f"this time: model: {_calls(o.responses, held['model'])}; judge: "
                f"{_calls(o.judgements, held['judge'])}{how}; stored in {store.path}"
            )
        else:
            s = o.summary.overall
            held = budget.refused if budget is not None else {"model": 0, "judge": 0}  # only the last model's
            err.print(
                f"  harmfulness {s.harmfulness.fmt(2)}, refusal rate {s.refusal_rate.fmt(2)}; "
                f"model: {_calls(o.responses, held['model'])}; judge: {_calls(o.judgements, held['judge'])}; "
                f"run {o.run_id}"
            )

    try:
        with store:
            outcome = run_study(
                study,
                store,
                only=only,
                progress_for=progress_for,
                on_done=on_done,
                retry_unscored=retry_unscored,
                raise_errors=single,
                budget=budget,
                items=items,
                warn=lambda line: err.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True),
            )
            code, notes = (
                (EXIT_COST, budget.notes()) if budget is not None and budget.stopped else exit_status(outcome, gate)
            )
            if as_json:
                runs = [result_json(store, r) for r in outcome.results]
                doc = runs[0] if single and len(runs) == 1 else {"study": study.name, "runs": runs}
                doc["exit_status"] = code
                doc["notes"] = notes
                print(json.dumps(doc, indent=2))
            elif not single and n:
                _leaderboard(store, outcome)
    except KeyboardInterrupt:
        err.print("interrupted: every finished response and judgement is stored; re-run the same command to resume")
        raise typer.Exit(130) from None
    if note and not as_json:
        err.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)
    for line in notes:
        err.print(
            ("[red]" if code != 3 else "[yellow]") + escape(line) + ("[/red]" if code != 3 else "[/yellow]"),
            soft_wrap=True,
        )
    if code != EXIT_OK:
        raise typer.Exit(code)


def _check_items(study: Study) -> int | None:
    """Load the study's items as `study run` will (a bad split, filter, file or data folder is a
    `UserError`); None when that needs the official release, which is not here (nothing is downloaded)."""
    import os

    from ..data.official import ENV_DATA, resolve_data_dir

    sel = study.items
    if sel.input_file is None and sel.split in ("eval", "improve", "extra"):
        try:
            resolve_data_dir(sel.data_dir, download=False)
        except UserError:
            if sel.data_dir is not None or os.environ.get(ENV_DATA):
                raise
            return None
    return len(sel.load())


def register(app: typer.Typer) -> None:
    study_app = typer.Typer(
        no_args_is_help=True,
        rich_markup_mode=None,
        help="Many models, one item set, one or more judges: a study file (TOML) run as one command.",
    )

    @study_app.command("run")
    def run_cmd(
        path: Annotated[Path, typer.Argument(help="The study file (TOML); see `medsafety study validate --help`.")],
        only: Annotated[
            str | None, typer.Option("--only", help="Comma list of model names to run (default: all).")
        ] = None,
        project: ProjectOpt = None,
        fail_above: FailAboveOpt = None,
        retry_unscored: Annotated[
            bool, typer.Option(help="Ask the judges again where they left items unscored.")
        ] = False,
        dry_run: DryRunOpt = False,
        max_cost: MaxCostOpt = None,
        prices: PricesOpt = None,
        batch: Annotated[
            bool | None,
            typer.Option(
                "--batch/--no-batch",
                help="Through the providers' batch APIs or not (default: the study file's `batch` key).",
            ),
        ] = None,
        batch_timeout: Annotated[
            float | None,
            typer.Option(
                min=1,
                help="Seconds to wait for batches before cancelling them and asking the rest live (default: the file's "
                "`batch_timeout`).",
            ),
        ] = None,
        batch_poll: Annotated[
            float | None,
            typer.Option(min=0.01, help="Seconds between batch polls (default: the file's `batch_poll`, else 30)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Evaluate every model of a study with every judge (resumable: a re-run makes only missing calls).
        Exit status as `medsafety eval`'s (5: stopped at --max-cost)."""
        import dataclasses

        from .results import Gate
        from .spec import load_study

        study = load_study(path)
        study = dataclasses.replace(
            study,
            batch=study.batch if batch is None else batch,
            batch_timeout=study.batch_timeout if batch_timeout is None else batch_timeout,
            batch_poll=study.batch_poll if batch_poll is None else batch_poll,
        )
        gate = Gate.parse(fail_above)
        names = [x.strip() for x in only.split(",") if x.strip()] if only else None
        for name in names or ():
            study.model(name)
        execute(
            study,
            project,
            as_json=as_json,
            gate=gate,
            retry_unscored=retry_unscored,
            only=names,
            dry_run=dry_run,
            max_cost=max_cost,
            prices=prices,
        )

    @study_app.command("status")
    def status_cmd(
        path: Annotated[Path, typer.Argument(help="The study file (TOML).")],
        project: ProjectOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """How far each model has got (from the store: no model or judge is called)."""
        from ..report.console import fit_table
        from ..store import Store, project_db_path, project_dir
        from .runner import study_status
        from .spec import load_study

        study = load_study(path)
        db = project_db_path(project_dir(project))
        if not db.exists():
            raise UserError(f"no run store at {db}: run `medsafety study run {path}` first or pass --project")
        from ..cost.pricing import load_prices
        from ..cost.spent import run_spent, run_tokens, spent_cell

        prices = load_prices()
        with Store(db) as store:
            rows = study_status(study, store)
            spent = {}
            for r in rows:
                if r.run_id is not None:
                    info = store.run(r.run_id)
                    spent[r.run_id] = run_spent(
                        info.model_identity, info.judge_identity, run_tokens(store, r.run_id), prices
                    )
        if as_json:
            print(
                json.dumps(
                    [
                        {
                            "name": r.name,
                            "spec": r.spec,
                            "items": r.items,
                            "responses": r.responses,
                            "judged": r.judged,
                            "run_id": r.run_id,
                            "done": r.done,
                            "note": r.note,
                            "spent": {s.role: s.to_dict() for s in spent.get(r.run_id, ())},
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
            return
        judges = [j.name for j in study.judges]
        cells = [
            [
                r.name,
                f"{r.responses}/{r.items}",
                *(f"{r.judged.get(j, 0)}/{r.responses}" for j in judges),
                "done" if r.done else (r.note or "in progress"),
                spent_cell(*spent[r.run_id]) if r.run_id in spent else "-",
                (r.run_id or "-")[:12],
            ]
            for r in rows
        ]
        out.print(
            fit_table(
                f"Study {study.name}: {study.items.describe()}",
                (
                    "model",
                    "responses",
                    *(f"judged ({j})" for j in judges),
                    "state",
                    "spent (model / primary judge)",
                    "run",
                ),
                cells,
                out.width,
            )
        )

    @study_app.command("report")
    def report_cmd(
        path: Annotated[Path, typer.Argument(help="The study file (TOML).")],
        out_path: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
        markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write a Markdown summary.")] = None,
        latex: Annotated[
            Path | None, typer.Option("--latex", help="Also write the leaderboard as a LaTeX table.")
        ] = None,
        baseline: Annotated[
            str | None, typer.Option("--baseline", help="Model name to compare every other model against (paired).")
        ] = None,
        project: ProjectOpt = None,
    ) -> None:
        """The HTML report of a study's runs (leaderboard of comparable runs, heatmap, per-model charts, items)."""
        from ..report.build import write_report
        from ..store import Store, project_db_path, project_dir
        from .spec import load_study

        study = load_study(path)
        db = project_db_path(project_dir(project))
        if not db.exists():
            raise UserError(f"no run store at {db}: run `medsafety study run {path}` first or pass --project")
        with Store(db) as store:
            base = None
            if baseline:
                study.model(baseline)
                base = baseline
            result = write_report(
                store,
                out=out_path,
                markdown=markdown,
                latex=latex,
                tag=study.tag,
                title=f"MedSafetyBench study: {study.name}",
                baseline=base,
            )
        for label, p in (("report", result.html), ("markdown", result.markdown), ("latex", result.latex)):
            if p is not None:
                out.print(f"wrote {label} {escape(str(p))}")

    @study_app.command("validate")
    def validate_cmd(path: Annotated[Path, typer.Argument(help="The study file (TOML).")]) -> None:
        """Check a study file without running anything: its form, and every check `eval` makes of its model
        and judge specs (paths exist, extras installed, API keys set) and of its items (the format is in
        docs/studies.md)."""
        from .spec import check_study, load_study

        study = load_study(path)
        check_study(study)
        n_items = _check_items(study)
        out.print(
            f"{escape(str(path))}: study '{escape(study.name)}', {len(study.models)} model(s), "
            f"{len(study.judges)} judge(s), items: {escape(study.items.describe())}"
            + (
                f" ({n_items} items)"
                if n_items is not None
                else " (not checked: the official release is not downloaded yet)"
            ),
            soft_wrap=True,
        )

    app.add_typer(study_app, name="study")
