"""`medsafety medqa`: medical QA accuracy of one model, or a paired before/after comparison of two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UserError
from .runner import MedQAComparison, MedQAResult


def _pct(e) -> str:
    if e is None or e.value is None:
        return "-"
    if e.low is None:
        return f"{100 * e.value:.1f}"
    return f"{100 * e.value:.1f} [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def result_table(r: MedQAResult) -> Table:
    t = Table(title=f"Medical QA accuracy (%) of {r.model_spec} ({r.mode}), 95% bootstrap intervals")
    for col in ("task", "n", "acc", "acc_norm", "invalid"):
        t.add_column(col, justify="left" if col == "task" else "right")
    for x in [*r.tasks, *r.groups]:
        name = ("  " + x.name) if x.name.startswith("mmlu_") and x.name != "mmlu_medical" else x.name
        n = f"{x.n_scored}" if x.n_scored == x.n else f"{x.n_scored}/{x.n}"
        t.add_row(name, n, _pct(x.acc), _pct(x.acc_norm), str(x.n_invalid))
    macro = r.macro
    t.add_row("macro average", "", "-" if macro is None else f"{100 * macro:.1f}", "", "")
    return t


def comparison_table(c: MedQAComparison) -> Table:
    t = Table(title=f"A = {c.a.model_spec}   B = {c.b.model_spec}   (paired McNemar test per task)")
    for col in ("task", "n", "acc A", "acc B", "B - A", "A only", "B only", "p"):
        t.add_column(col, justify="left" if col == "task" else "right")
    for p in c.tasks:
        diff = "-" if p.acc_a is None else f"{100 * (p.acc_b - p.acc_a):+.1f}"
        t.add_row(p.name, str(p.n), "-" if p.acc_a is None else f"{100 * p.acc_a:.1f}",
                  "-" if p.acc_b is None else f"{100 * p.acc_b:.1f}", diff, str(p.a_only), str(p.b_only), f"{p.p_value:.3g}")
    return t


def register(app: typer.Typer) -> None:
    out, err = Console(), Console(stderr=True)

    @app.command("medqa")
    def medqa_cmd(
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec: hf:PATH[+ADAPTER] (log-likelihood) or openai:MODEL[@URL] (generation).")] = None,
        compare: Annotated[tuple[str, str] | None, typer.Option("--compare", help="Two model specs A B: accuracies side by side with a paired McNemar test per task.")] = None,
        tasks: Annotated[str, typer.Option(help="Comma list: medqa, medmcqa, pubmedqa, mmlu_medical (or mmlu_<subject>).")] = "medqa,medmcqa,pubmedqa,mmlu_medical",
        data: Annotated[Path | None, typer.Option(help="Folder with the released files (else $MEDSAFETYBENCH_MEDQA_DATA); see docs/medqa.md.")] = None,
        shots: Annotated[int, typer.Option(min=0, help="Few-shot examples (only 0 is supported).")] = 0,
        limit: Annotated[int | None, typer.Option(min=1, help="Keep the first N questions of each task.")] = None,
        batch_size: Annotated[int, typer.Option(min=1, help="Questions per forward pass (hf:).")] = 8,
        concurrency: Annotated[int, typer.Option(min=1, help="Concurrent requests (openai:).")] = 16,
        project: Annotated[Path | None, typer.Option("--project", help="Project directory holding the run store.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
    ) -> None:
        """Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical). Every per-question score is stored:
        re-running computes nothing new, an interrupted run resumes."""
        from ..report.console import RichProgress
        from ..store import Store
        from .runner import compare_medqa, evaluate_medqa

        if (model is None) == (compare is None):
            raise UserError("give either --model SPEC or --compare SPEC_A SPEC_B")
        task_names = [t.strip() for t in tasks.split(",") if t.strip()]
        store = Store.open_project(project)
        opts = {"concurrency": concurrency}
        try:
            with store, RichProgress(err, enabled=not as_json) as progress:
                if compare is not None:
                    res = compare_medqa(store, compare[0], compare[1], task_names, data, limit, batch_size, progress,
                                        shots=shots, **opts)
                    results = [res.a, res.b]
                else:
                    res = evaluate_medqa(store, model, task_names, data, limit, batch_size, progress, shots=shots, **opts)
                    results = [res]
        except KeyboardInterrupt:
            err.print("interrupted: every finished score is stored; re-run the same command to resume")
            raise typer.Exit(130) from None
        if as_json:
            print(json.dumps(res.to_dict(), indent=2))
        else:
            for r in results:
                out.print(result_table(r))
            if compare is not None:
                out.print(comparison_table(res))
            out.print(f"questions scored this time: {sum(r.computed for r in results)}; stored in {store.path}")
        failed = sum(r.failed for r in results)
        if failed:
            first = next(e for r in results for e in r.errors)
            err.print(f"[red]{failed} request(s) failed[/red] (first: {first}); re-run the same command to retry only those.")
            raise typer.Exit(1)
