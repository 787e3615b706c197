"""CLI commands for reports: `medsafety report`, `medsafety judge-agreement`, `medsafety compare`
(registered on the main app by `register(app)`; listed in `cli.COMMAND_MODULES`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import UserError

if TYPE_CHECKING:  # numpy: only where a command runs
    from ..metrics import PairedComparison


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _p(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2g}" if v < 0.001 else f"{v:.3f}")


def report_cmd(
    runs: Annotated[
        str | None, typer.Option("--runs", help="Comma list of run ids or unique prefixes (default: every run).")
    ] = None,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    figures: Annotated[
        Path | None, typer.Option("--figures", help="Also write every figure as PNG and SVG into this folder.")
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="Also write a Markdown summary to this file ('-' prints it).")
    ] = None,
    latex: Annotated[
        Path | None, typer.Option("--latex", help="Also write the leaderboard as a LaTeX (booktabs) table.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only runs with this tag (e.g. study:paper).")] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Run id or name every other run of its group is compared with (paired)."),
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "MedSafetyBench report",
    project: Annotated[Path | None, typer.Option("--project", help="Project directory holding the run store.")] = None,
) -> None:
    """Write one self-contained HTML report (a leaderboard per group of comparable runs, harmfulness and
    refusal per model, models x principles heatmap, by source, paired comparisons, one item across models,
    provenance, unscored counts, paged items), plus optional PNG/SVG figures, Markdown and LaTeX."""
    from ..cli_common import csv_list, out
    from ..store import Store, project_db_path
    from ..store import project_dir as _project
    from .build import write_report
    from .markdown import report_markdown

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: run `medsafety eval` first or pass --project")
    to_stdout = markdown is not None and str(markdown) == "-"
    with Store(path) as store:
        result = write_report(
            store,
            csv_list(runs),
            out=out_path,
            figures_dir=figures,
            markdown=None if to_stdout else markdown,
            latex=latex,
            title=title,
            tag=tag,
            baseline=baseline,
        )
    if to_stdout:
        print(report_markdown(result.data), end="")
        return
    for label, p in (("report", result.html), ("markdown", result.markdown), ("latex", result.latex)):
        if p is not None:
            out.print(f"wrote {label} {escape(str(p))}")
    if result.figures:
        out.print(f"wrote {len(result.figures)} figure files to {escape(str(figures))}")


def _agreement_table(title: str, agreement) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("threshold", "accuracy", "kappa", "precision", "recall", "F1", "tp", "fp", "fn", "tn"):
        t.add_column(col, justify="right")
    for p in agreement.sweep:
        a = p.agreement
        mark = " *" if p.threshold == agreement.threshold else ""
        t.add_row(
            f">= {p.threshold}{mark}",
            _fmt(a.accuracy),
            _fmt(a.kappa),
            _fmt(a.precision),
            _fmt(a.recall),
            _fmt(a.f1),
            str(a.tp),
            str(a.fp),
            str(a.fn),
            str(a.tn),
        )
    return t


def judge_agreement_cmd(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels", help="Labelled set: HarmBench validation JSONL, or CSV/JSONL with request, response, label."
        ),
    ],
    judge: Annotated[
        str, typer.Option("--judge", "-j", help="'offline' or a model spec for an LLM judge.")
    ] = "offline",
    judge2: Annotated[
        str | None, typer.Option("--judge2", help="A second judge to compare with the first on the same responses.")
    ] = None,
    threshold: Annotated[int, typer.Option(min=1, max=5, help="Scores >= this count as harmful.")] = 4,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Usage policy for every case: medical or general (default: general for HarmBench, else the file's "
            "policy column or medical)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use the first N labelled cases.")] = None,
    figures: Annotated[
        Path | None, typer.Option("--figures", help="Write agreement figures (PNG + SVG) into this folder.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary to this file.")] = None,
    project: Annotated[
        Path | None,
        typer.Option("--project", help="Project directory holding the store (judgements are cached there)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent judge requests.")] = 16,
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request timeout in seconds.")] = 120.0,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send LLM judges on openai:/anthropic: models through the providers' batch APIs (resumable; "
            "docs/models.md).",
        ),
    ] = False,
    batch_timeout: Annotated[
        float | None,
        typer.Option(
            min=1, help="With --batch: seconds to wait for batches; then they are cancelled and the rest asked live."
        ),
    ] = None,
    batch_poll: Annotated[float, typer.Option(min=0.01, help="With --batch: seconds between polls.")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
) -> None:
    """How far to trust a judge: accuracy, Cohen's kappa, precision and recall for "harmful" against
    human labels, by score threshold; with --judge2, agreement between two judges. Labelled rows a judge
    was trained on (the offline judges know theirs) are reported apart, as in-sample; the headline
    figures are over the held-out rows. Judgements are cached in the store: a second run makes no judge
    calls."""
    from ..cli_common import err, out
    from ..judging import load_judge
    from ..labels.agreement import judge_pair_agreement, split_label_agreement
    from ..labels.labelled import judge_labelled, load_labelled
    from ..store import Store
    from ..store import project_dir as _project
    from .build import write_text_atomic
    from .console import RichProgress
    from .markdown import agreement_markdown, judge_pair_markdown

    cases = load_labelled(labels, policy=policy)[:limit]
    specs = [judge] + ([judge2] if judge2 else [])
    judges = [
        load_judge(s, role=r, concurrency=concurrency, timeout=timeout)
        for s, r in zip(specs, ("--judge", "--judge2"), strict=False)
    ]
    results = []
    with Store.open_project(_project(project)) as store:
        for j in judges:
            with RichProgress(err, enabled=not as_json) as progress:
                if batch:
                    from ..batch.runner import BatchOptions, batch_judge

                    if not batch_judge(
                        j, store, BatchOptions(timeout=batch_timeout, poll_interval=batch_poll), progress.batch_event
                    ):
                        err.print(f"note: --batch: judge {escape(j.identity)} has no batch API; it runs as usual")
                results.append(judge_labelled(store, j, cases, progress))
    truth = [c.label for c in cases]
    rows = [(c.case.request, c.case.response) for c in cases]
    masks = [j.trained_on.mask(rows) if getattr(j, "trained_on", None) is not None else None for j in judges]
    splits = [
        split_label_agreement(
            [s if ok else None for s, ok in zip(r.scores, r.judged, strict=True)], truth, mask, threshold
        )
        for r, mask in zip(results, masks, strict=True)
    ]
    agreements = [sp.held_out if sp.held_out.n or sp.in_sample is None else sp.in_sample for sp in splits]
    pair = judge_pair_agreement(results[0].scores, results[1].scores, threshold) if judge2 else None
    md = "".join(
        agreement_markdown(r.judge_identity, sp.held_out, r.failed, in_sample=sp.in_sample) + "\n"
        for r, sp in zip(results, splits, strict=True)
    )
    if pair:
        md += judge_pair_markdown(results[0].judge_identity, results[1].judge_identity, pair)
    if markdown is not None:
        write_text_atomic(markdown, md)
    if figures is not None:
        from . import figures as figs

        blocks = []
        for k, (r, a) in enumerate(zip(results, agreements, strict=True)):
            label = r.judge_identity if a is splits[k].held_out else f"{r.judge_identity} (IN-SAMPLE)"
            for b in (figs.threshold_figure(a, label), figs.confusion_figure(a)):
                b.name = b.name if k == 0 else f"{b.name}-judge2"
                blocks.append(b)
        if pair:
            blocks.append(figs.judge_pair_figure(pair, results[0].judge_identity, results[1].judge_identity))
        for b in blocks:
            figs.save_figure(b, figures)
        figs.close(blocks)
    failed = sum(r.failed for r in results)
    if as_json:
        print(
            json.dumps(
                {
                    "labels": str(labels),
                    "n": len(cases),
                    "threshold": threshold,
                    "judges": [
                        {"identity": r.judge_identity, "calls": r.calls, "failed": r.failed, **sp.to_dict()}
                        for r, sp in zip(results, splits, strict=True)
                    ],
                    "pair": pair.to_dict() if pair else None,
                },
                indent=2,
            )
        )
    else:
        for r, sp, a in zip(results, splits, agreements, strict=True):
            h = a.at_threshold
            ins = sp.in_sample
            if ins is None:
                scope = f"{a.n} labelled, {a.n_unscored} unscored"
            elif sp.held_out.n:
                scope = (
                    f"{sp.held_out.n} held-out labelled rows, {sp.held_out.n_unscored} unscored "
                    f"([yellow]{ins.n} more were in this judge's training data: reported apart below[/yellow])"
                )
            else:
                scope = (
                    f"[red]IN-SAMPLE[/red]: all {ins.n} labelled rows were in this judge's training data, so "
                    "these figures are an upper bound, not an estimate of its accuracy"
                )
            out.print(
                f"[bold]{escape(r.judge_identity)}[/bold]: {scope}; harmful = score >= {threshold}: "
                f"accuracy {_fmt(h.accuracy)}, kappa {_fmt(h.kappa)}, precision {_fmt(h.precision)}, "
                f"recall {_fmt(h.recall)}  (judge calls this time: {r.calls})",
                soft_wrap=True,
            )
            out.print(f"confusion (rows human not harmful / harmful; columns judge): {h.confusion}")
            out.print(_agreement_table("By threshold (* = chosen)", a))
            if ins is not None and sp.held_out.n:
                hi = ins.at_threshold
                out.print(
                    f"in-sample ({ins.n} rows the judge was trained on; an upper bound, not an estimate): "
                    f"accuracy {_fmt(hi.accuracy)}, kappa {_fmt(hi.kappa)}, precision {_fmt(hi.precision)}, "
                    f"recall {_fmt(hi.recall)}",
                    soft_wrap=True,
                )
        if pair:
            out.print(
                f"[bold]two judges[/bold]: {pair.n_both_scored} scored by both; exact {_fmt(pair.exact)}, "
                f"kappa {_fmt(pair.kappa)}, quadratic-weighted kappa {_fmt(pair.weighted_kappa)}, "
                f"harmful-call kappa {_fmt(pair.binary.kappa)}",
                soft_wrap=True,
            )
            t = Table(title="Scores: rows judge A, columns judge B", title_justify="left")
            t.add_column("A \\ B")
            for s in range(1, 6):
                t.add_column(str(s), justify="right")
            for i, row in enumerate(pair.confusion, start=1):
                t.add_row(str(i), *map(str, row))
            out.print(t)
    if failed:
        err.print(
            f"[red]{failed} judge request(s) failed[/red] (first: "
            f"{escape(next(e for r in results for e in r.errors))}); "
            "they are left out above; re-run the same command to retry only those."
        )
        raise typer.Exit(1)


def _cmp_cells(name: str, c: PairedComparison) -> list[str]:
    return [name, str(c.n), _fmt(c.mean_a, 2), _fmt(c.mean_b, 2), c.difference.fmt(2), _p(c.wilcoxon_p)]


def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="Run id, unique prefix or name of the baseline, A.")],
    run_b: Annotated[str, typer.Argument(help="Run id, unique prefix or name compared with it, B.")],
    judge: Annotated[
        str | None,
        typer.Option("--judge", help="Judge identity both runs were judged by (default: the first they share)."),
    ] = None,
    project: Annotated[Path | None, typer.Option("--project", help="Project directory holding the run store.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
) -> None:
    """Paired comparison of two runs on their shared items (matched by item id): mean difference B - A
    with a paired bootstrap 95% interval and a Wilcoxon signed-rank p, overall and per principle, and the
    refusal rate's difference; runs judged by several judges also show their juries and the paired
    difference of the jury scores."""
    from ..cli_common import out
    from ..store import Store, project_db_path
    from ..store import project_dir as _project
    from .compare import compare_runs
    from .console import fit_table

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: pass --project")
    with Store(path) as store:
        c = compare_runs(store, run_a, run_b, judge=judge)
        cal = _compare_calibration(store, c)
        from ..labels.jury_report import compare_juries

        juries = compare_juries(store, c.run_a.id, c.run_b.id)
    if as_json:
        print(json.dumps({**c.to_dict(), "calibration": cal.to_dict(), "jury": juries.to_dict()}, indent=2))
        return
    out.print(
        f"A = {escape(c.run_a.label)} ({c.run_a.id[:12]}), B = {escape(c.run_b.label)} "
        f"({c.run_b.id[:12]}); judge {escape(c.judge_a)}{'' if c.judge_a == c.judge_b else ' / ' + escape(c.judge_b)}; "
        f"{c.n_shared} shared items ({c.n_not_scored} not scored in both), "
        f"{c.n_only_a} only in A, {c.n_only_b} only in B"
    )
    for w in c.warnings:
        out.print(f"[yellow]note:[/yellow] {escape(w)}")
    rows = [_cmp_cells("overall", c.overall)] + [_cmp_cells(name, pc) for name, pc in c.by_principle]
    cols = ("", "n", "mean A", "mean B", "B - A [95% CI]", "Wilcoxon p")
    out.print(fit_table("Harmfulness, B - A (negative: B is safer)", cols, rows, out.width, right=(1, 2, 3, 4, 5)))
    if c.refusal is not None:
        out.print(
            fit_table("Refusal rate, B - A", cols, [_cmp_cells("overall", c.refusal)], out.width, right=(1, 2, 3, 4, 5))
        )
    if cal.a or cal.b:
        from ..labels.report import comparison_renderable

        out.print(comparison_renderable(cal))
    if juries.a is not None or juries.b is not None:
        from ..labels.jury_report import comparison_renderable as jury_comparison

        out.print(jury_comparison(juries, out.width))


def _compare_calibration(store, c):  # type: ignore[no-untyped-def]
    """Human labels of either run: agreement and judge-corrected scores (labels/report.py)."""
    from ..labels.report import compare_calibration

    return compare_calibration(store, c.run_a.id, c.run_b.id, judge_a=c.judge_a, judge_b=c.judge_b)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
    app.command("judge-agreement")(judge_agreement_cmd)
    app.command("compare")(compare_cmd)
