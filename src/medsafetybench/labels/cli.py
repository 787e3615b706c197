"""`medsafety label`: people label a stratified sample of a run's responses on the paper's 1-5 rubric
(registered on the main app by `register(app)`; listed in `cli.COMMAND_MODULES`).

    medsafety label RUN --sample N [--seed S] [--labeller NAME] [--port P] [--export FILE]
    medsafety label RUN --show-disagreements
    medsafety label import FILE --run RUN --labeller NAME

`label RUN ...` is the `page` subcommand: a first word that is not a subcommand is taken as the run.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..cli_common import JsonOpt, ProjectOpt, err, out
from ..cli_common import project_dir as _project
from ..errors import UserError

if TYPE_CHECKING:
    from ..store import Store


class _DefaultToPage(TyperGroup):
    """`medsafety label RUN ...` means `medsafety label page RUN ...`."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["page", *args]
        return super().parse_args(ctx, args)


label_app = typer.Typer(
    cls=_DefaultToPage,
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    help="Label a sample of a run's responses (a person is a judge too, `human:NAME`): `medsafety label RUN "
    "--sample N` serves the labelling page; `medsafety label import FILE --run RUN --labeller NAME` reads "
    "labels made elsewhere. `medsafety show RUN` then gives the judge's agreement and the judge-corrected "
    "harmfulness.",
)


def _open(project: Path | None) -> Store:
    from ..store import Store, project_db_path

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: run `medsafety eval` first or pass --project")
    return Store(path)


def _default_labeller() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def sample_csv(store: Store, sample) -> str:  # type: ignore[no-untyped-def]
    """The sample as a CSV to label elsewhere: item_id, principle, source, request, response, score, reason."""
    rows = {r.item_id: r for r in store.run_rows(sample.run_id)}
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["item_id", "principle", "source", "request", "response", "score", "reason"])
    for item_id in sample.item_ids:
        r = rows[item_id]
        w.writerow(
            [item_id, r.principle if r.principle is not None else "", r.source or "", r.request, r.response, "", ""]
        )
    return buf.getvalue()


@label_app.command("page")
def page_cmd(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            help="Items to draw (stratified by principle and source; proportional, at least one per stratum when N "
            "allows).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the draw: the same run, seed and N draw the same items.")] = 0,
    labeller: Annotated[
        str | None,
        typer.Option(help="Your name: labels are stored as the judge human:NAME (default: your login name)."),
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8766,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Write the sample to this CSV (to label elsewhere, then `label import`) instead of serving the page.",
        ),
    ] = None,
    show_disagreements: Annotated[
        bool,
        typer.Option(
            "--show-disagreements",
            help="List the items the run's judges disagree on, with request and response, for reading (no page is "
            "served; the sample to label stays uniformly random within strata).",
        ),
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Draw (or find again) a stratified sample of the run and serve the labelling page on 127.0.0.1 until
    Ctrl+C: 1-5 score, arrows or n/p move; every label is saved at once, so labelling resumes any time."""
    from .page import LabelServer
    from .sample import check_labeller_run, draw_sample, human_identity

    if sample is None and not show_disagreements:
        raise UserError("give --sample N (the items to draw and label) or --show-disagreements")
    identity = human_identity(labeller or _default_labeller())
    with _open(project) as store:
        info = store.run(run)
        if show_disagreements:
            _show_disagreements(store, info.id)
            return
        assert sample is not None
        check_labeller_run(store, info.id)
        drawn = draw_sample(store, info.id, sample, seed)
        if export is not None:
            from ..report.build import write_text_atomic

            write_text_atomic(export, sample_csv(store, drawn))
            out.print(
                f"wrote sample {drawn.id} ({len(drawn.items)} items of run {info.id[:12]}) to "
                f"{escape(str(export))}; fill in the score column (1-5), then `medsafety label import "
                f"{escape(str(export))} --run {info.id[:12]} --labeller NAME`",
                soft_wrap=True,
            )
            return
        db = store.path
    server = LabelServer(db, drawn.id, identity, port=port).start()
    out.print(
        f"labelling page for {escape(identity)}: {server.url}  (sample {drawn.id}, {len(drawn.items)} items "
        f"of run {info.id[:12]}, seed {seed}; Ctrl+C to stop; labels are saved as you give them)",
        soft_wrap=True,
    )
    server.serve_until_interrupted()
    from ..store import Store

    with Store(db) as store:
        from .sample import run_labels

        done = sum(1 for i in drawn.item_ids if i in run_labels(store, info.id, identity))
    err.print(
        f"{done} of {len(drawn.items)} labelled; `medsafety show {info.id[:12]}` gives the judge-corrected harmfulness"
    )


READ_CHARS = 600
"""Request and response characters shown per disagreement by `--show-disagreements`."""


def _clip(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= READ_CHARS else text[:READ_CHARS] + f" ... [{len(text) - READ_CHARS} more characters]"


def _show_disagreements(store: Store, run_id: str) -> None:
    """The jury block with every disagreement, then each one's request and response (as plain text)."""
    from rich.text import Text

    from .jury_report import jury_renderable, principles_of, run_jury

    jury = run_jury(store, run_id)
    if jury is None:
        raise UserError(
            f"run {run_id[:12]} has one judge, so nothing to disagree on: add judges with "
            f"`medsafety rejudge {run_id[:12]} --judge SPEC`"
        )
    rows = {r.item_id: r for r in store.run_rows(run_id)}
    out.print(jury_renderable(jury, out.width, principles_of(store, run_id), limit=None))
    for v in jury.disagreements:
        r = rows[v.item_id]
        scores = " ".join(f"J{k + 1}={'?' if s is None else s}" for k, s in enumerate(v.scores))
        out.print(
            Text(
                f"\n{v.item_id}  (principle {r.principle if r.principle is not None else '-'}; {scores})", style="bold"
            )
        )
        out.print(Text("request:  " + _clip(r.request)))
        out.print(Text("response: " + _clip(r.response)))
    out.print(
        Text(
            "\nThese items are for reading. The sample to label (`--sample N`) stays uniformly random within "
            "its strata and does not depend on them, so the judge-corrected interval stays valid; labelling "
            "only the disagreements would bias it."
        )
    )


@label_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or JSONL with item_id and score (1-5); optional reason.")],
    run: Annotated[str, typer.Option("--run", help="Run id, unique prefix or name the labels belong to.")],
    labeller: Annotated[str, typer.Option("--labeller", help="Who labelled: stored as the judge human:NAME.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import labels made elsewhere: the whole file is checked first, then written in one transaction
    (a newer label of the same item replaces an older one)."""
    from .importer import read_label_file
    from .sample import human_identity, put_labels, run_samples

    identity = human_identity(labeller)
    labels = read_label_file(file)
    with _open(project) as store:
        info = store.run(run)
        n = put_labels(
            store,
            info.id,
            identity,
            labels.scores,
            via=f"import:{Path(file).name}",
            reasons=labels.reasons,
            where=labels.where,
        )
        sampled = {i for s in run_samples(store, info.id) for i in s.item_ids}
    outside = sum(1 for i in labels.scores if i not in sampled)
    if as_json:
        print(
            json.dumps(
                {
                    "run_id": info.id,
                    "labeller": identity,
                    "imported": n,
                    "blank": labels.n_blank,
                    "outside_samples": outside,
                },
                indent=2,
            )
        )
        return
    out.print(
        f"imported {n} label(s) by {escape(identity)} for run {info.id[:12]}"
        + (f" ({labels.n_blank} blank row(s) skipped)" if labels.n_blank else ""),
        soft_wrap=True,
    )
    if outside:
        err.print(
            f"[yellow]note:[/yellow] {outside} labelled item(s) are in no sample drawn from this run; "
            "judge-corrected estimates use labels of a drawn sample only (`medsafety label RUN --sample N "
            "--export FILE` draws one to label)",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(label_app, name="label")
