"""`medsafety medqa`: medical QA accuracy of one model or a paired comparison of two, under the harness
(default) or the paper protocol; `medsafety medqa runs`: the stored results. Tables fit 80 columns:
percentages with two decimals and their intervals in columns of their own, MMLU subjects indented
under the pooled `mmlu_medical` row without their prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..cli_common import err, out
from ..errors import UserError

if TYPE_CHECKING:  # the medsafety command imports this module: keep its import light
    pass

Opt = typer.Option


def register(app: typer.Typer) -> None:
    medqa = typer.Typer(
        help="Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical).",
        no_args_is_help=False,
        invoke_without_command=True,
    )
    app.add_typer(medqa, name="medqa")

    @medqa.callback()
    def medqa_cmd(
        ctx: typer.Context,
        model: Annotated[
            str | None,
            Opt("--model", "-m", help="Model spec: hf:PATH[+ADAPTER], openai:MODEL[@URL], vllm:PATH (paper protocol)."),
        ] = None,
        compare: Annotated[
            tuple[str, str] | None,
            Opt("--compare", help="Two model specs A B: accuracies side by side with a paired McNemar test per task."),
        ] = None,
        tasks: Annotated[
            str, Opt(help="Comma list: medqa, medmcqa, pubmedqa, mmlu_medical (or mmlu_<subject>).")
        ] = "medqa,medmcqa,pubmedqa,mmlu_medical",
        medqa_dir: Annotated[
            Path | None,
            Opt(
                "--medqa-dir",
                help="Folder with the released files (else $MEDSAFETYBENCH_MEDQA_DATA); see docs/medqa.md.",
            ),
        ] = None,
        protocol: Annotated[
            str,
            Opt(
                help="harness: lm-evaluation-harness zero-shot (log-likelihood for hf:); paper: the MedSafetyBench "
                "authors' meditron-eval generation protocol."
            ),
        ] = "harness",
        add_bos: Annotated[
            bool,
            Opt(
                "--add-bos/--no-add-bos",
                help="Harness log-likelihood: encode with the tokenizer's special tokens (a BOS for Llama), as lm-eval "
                "does; --no-add-bos: none (release 0.1.0).",
            ),
        ] = True,
        paper_shots: Annotated[
            int,
            Opt(min=0, help="Paper protocol: in-context shots from the train split (needs the train files, see docs)."),
        ] = 0,
        paper_seeds: Annotated[
            str | None, Opt(help="Paper protocol: comma list of shot seeds (default: the reference's 10).")
        ] = None,
        paper_single_seed: Annotated[
            bool, Opt(help="Paper protocol: shots from seed 1234 only (the reference without -m 1).")
        ] = False,
        paper_cot: Annotated[bool, Opt(help="Paper protocol: chain-of-thought instruction, 1024 new tokens.")] = False,
        paper_sc: Annotated[
            bool, Opt(help="Paper protocol: self-consistency (branches at temperature 0.8, majority vote).")
        ] = False,
        paper_sc_branches: Annotated[int, Opt(min=1, help="Paper protocol: self-consistency branches.")] = 10,
        shots: Annotated[
            int, Opt(min=0, hidden=True, help="Alias of --paper-shots (the harness protocol is zero-shot).")
        ] = 0,
        limit: Annotated[int | None, Opt(min=1, help="Keep the first N questions of each task.")] = None,
        batch_size: Annotated[int, Opt(min=1, help="Questions per forward pass (hf:).")] = 16,
        concurrency: Annotated[int, Opt(min=1, help="Concurrent requests (openai:).")] = 16,
        export: Annotated[
            Path | None,
            Opt(
                "--export",
                help="Also write every per-question result (with protocol and settings) to FILE (.jsonl or .csv).",
            ),
        ] = None,
        project: Annotated[Path | None, Opt("--project", help="Project directory holding the run store.")] = None,
        as_json: Annotated[bool, Opt("--json", help="Print machine-readable JSON instead of tables.")] = False,
    ) -> None:
        """Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical). Every per-question score is stored:
        re-running computes nothing new, an interrupted run resumes. `medsafety medqa runs` lists what is stored."""
        if ctx.invoked_subcommand is not None:
            return
        data = medqa_dir
        from ..report.console import RichProgress
        from ..store import Store
        from .protocols import make_protocol
        from .runner import compare_medqa, evaluate_medqa

        if (model is None) == (compare is None):
            raise UserError("give either --model SPEC or --compare SPEC_A SPEC_B (or `medsafety medqa runs`)")
        if protocol.lower() == "paper":
            seeds = tuple(int(s) for s in paper_seeds.split(",") if s.strip()) if paper_seeds else None
            proto = make_protocol(
                "paper",
                shots=paper_shots or shots,
                multi_seed=not paper_single_seed,
                seeds=seeds,
                cot=paper_cot,
                sc=paper_sc,
                sc_branches=paper_sc_branches,
            )
        else:
            if paper_shots or paper_seeds or paper_cot or paper_sc or paper_single_seed:
                raise UserError("--paper-* options belong to --protocol paper")
            if shots:
                raise UserError("--shots: the harness protocol is zero-shot; use --protocol paper --paper-shots N")
            proto = make_protocol(protocol, add_bos=add_bos)
        if export is not None and export.suffix.lower() not in (".jsonl", ".csv"):
            raise UserError(f"--export '{export}': name the file .jsonl or .csv")
        task_names = [t.strip() for t in tasks.split(",") if t.strip()]
        store = Store.open_project(project)
        opts = {"concurrency": concurrency}
        try:
            with store, RichProgress(err, enabled=not as_json) as progress:
                if compare is not None:
                    res = compare_medqa(
                        store,
                        compare[0],
                        compare[1],
                        task_names,
                        data,
                        limit,
                        batch_size,
                        progress,
                        protocol=proto,
                        **opts,
                    )
                    results = [res.a, res.b]
                else:
                    res = evaluate_medqa(
                        store, model, task_names, data, limit, batch_size, progress, protocol=proto, **opts
                    )
                    results = [res]
        except KeyboardInterrupt:
            err.print("interrupted: every finished score is stored; re-run the same command to resume")
            raise typer.Exit(130) from None
        if export is not None:
            from .scores import export_records

            written = 0
            for i, r in enumerate(results):
                path = export if len(results) == 1 else export.with_name(f"{export.stem}.{'ab'[i]}{export.suffix}")
                written += export_records(r, path)
            err.print(f"wrote {written} per-question rows to {export if len(results) == 1 else export.parent}")
        if as_json:
            print(json.dumps(res.to_dict(), indent=2))
        else:
            from .tables import comparison_table, replicate_table, result_table

            for r in results:
                out.print(result_table(r))
                extra = replicate_table(r)
                if extra is not None:
                    out.print(extra)
            if compare is not None:
                out.print(comparison_table(res))
            out.print(f"scored this time: {sum(r.computed for r in results)}; stored in {store.path}")
        failed = sum(r.failed for r in results)
        if failed:
            first = next(e for r in results for e in r.errors)
            err.print(
                f"[red]{failed} request(s) failed[/red] (first: {first}); re-run the same command to retry only those."
            )
            raise typer.Exit(1)

    @medqa.command("runs")
    def runs_cmd(
        project: Annotated[Path | None, Opt("--project", help="Project directory holding the run store.")] = None,
        as_json: Annotated[bool, Opt("--json", help="Print machine-readable JSON instead of a table.")] = False,
    ) -> None:
        """List the stored medical QA results: one per model, protocol and settings."""
        from ..store import Store, project_db_path
        from .scores import medqa_runs
        from .tables import runs_table

        path = project_db_path(project)
        if not path.exists():
            raise UserError(f"no run store at {path}: run `medsafety medqa --model ...` first or pass --project")
        with Store(path) as store:
            runs = medqa_runs(store)
        if as_json:
            print(json.dumps([r.to_dict() for r in runs], indent=2))
        else:
            out.print(runs_table(runs) if runs else "no medical QA results stored")
