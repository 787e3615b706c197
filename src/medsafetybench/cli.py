"""The `medsafety` command: a thin layer over the library that parses options, shows progress and
tables, and turns `UserError`s into one-line messages with exit status 2 (no tracebacks)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from . import __version__
from .cli_common import JsonOpt, ProjectOpt, err, out
from .errors import UserError
from .store import project_dir as _project

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_show_locals=False,
                  help="Measure and improve the medical safety of LLMs (MedSafetyBench).")


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@app.command("eval")
def eval_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec: openai:MODEL[@BASE_URL], hf:PATH[+ADAPTER], vllm:PATH.")],
    judge: Annotated[str, typer.Option("--judge", "-j", help="'offline' (default; the offline judge v2, approximate), 'offline-v1', or a model spec for the paper's LLM judge, e.g. openai:gpt-3.5-turbo-0125.")] = "offline",
    split: Annotated[str, typer.Option(help="eval (MedSafety-Eval, 900), improve (MedSafety-Improve, 900), extra (Llama-3 requests) or sample (bundled demo set).")] = "eval",
    source: Annotated[str | None, typer.Option(help="Comma list of sources: gpt4, llama2, llama3.")] = None,
    principle: Annotated[str | None, typer.Option(help="Comma list or range of AMA principles, e.g. 1,4 or 2-5.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Keep the first N items (ordered by id).")] = None,
    data: Annotated[Path | None, typer.Option(help="Local copy of the official release (else $MEDSAFETYBENCH_DATA, else download and cache).")] = None,
    input_file: Annotated[Path | None, typer.Option("--input", help="Your own requests: CSV, JSONL or Alpaca JSON with a request column.")] = None,
    project: ProjectOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent requests for HTTP backends.")] = 16,
    judge_concurrency: Annotated[int | None, typer.Option(min=1, help="Concurrent judge requests (default: --concurrency).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size for local (hf:) models.")] = 8,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, help="GPUs to shard a vllm: model across (one node).")] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request timeout in seconds for HTTP backends.")] = 120.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per response (paper: 512).")] = 512,
    system_prompt: Annotated[str | None, typer.Option(help="System prompt (default: the Llama-2 default system prompt, as in the paper; 'none' for none).")] = None,
    prompt_format: Annotated[str, typer.Option(help="Prompt format for local models: chat (tokenizer template), llama2, mistral, vicuna, medalpaca, med42, alpaca, raw.")] = "chat",
    retry_unscored: Annotated[bool, typer.Option(help="Ask the judge again for judgements stored as unscored.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model on MedSafetyBench: respond, judge, summarise. Every call is cached in the store;
    re-running the same command makes no model calls, and an interrupted run resumes."""
    from .data import load_items
    from .judging import is_offline, load_judge
    from .models import GenerationConfig, load_model, parse_spec
    from .pipeline import EvalSettings, run_evaluation
    from .principles import LLAMA2_DEFAULT_SYSTEM_PROMPT, parse_principles
    from .report.console import RichProgress, print_summary
    from .store import Store

    spec = parse_spec(model)
    if spec.backend == "openai" and prompt_format != "chat":
        raise UserError("--prompt-format applies to local models (hf:, vllm:); openai: endpoints apply their own chat template")
    items = load_items(split=split, sources=_csv(source), principles=parse_principles(principle),
                       data_dir=data, user_file=input_file, limit=limit)
    if not items:
        raise UserError("no items match the chosen --split/--source/--principle")
    if system_prompt is None:
        system_prompt = LLAMA2_DEFAULT_SYSTEM_PROMPT
    elif system_prompt.strip().lower() in ("", "none"):
        system_prompt = None
    settings = EvalSettings(system_prompt=system_prompt, generation=GenerationConfig(max_new_tokens=max_new_tokens))
    store = Store.open_project(_project(project))
    model_obj = load_model(spec, concurrency=concurrency, timeout=timeout, batch_size=batch_size,
                           prompt_format=prompt_format, tensor_parallel_size=tensor_parallel_size)
    judge_obj = load_judge(judge, concurrency=judge_concurrency or concurrency, timeout=timeout,
                           batch_size=batch_size)
    if is_offline(judge):
        err.print("[yellow]note:[/yellow] the offline judge approximates the paper's GPT-3.5 judge (see README for its "
                  "measured agreement); use --judge openai:gpt-3.5-turbo-0125 for paper-comparable scores.",
                  soft_wrap=True)

    try:
        with store, RichProgress(err, enabled=not as_json) as progress:
            outcome = run_evaluation(store, items, model_obj, judge_obj, model_spec=str(spec), settings=settings,
                                     progress=progress, retry_unscored=retry_unscored)
            run = store.run(outcome.run_id)
    except KeyboardInterrupt:
        err.print("interrupted: every finished response and judgement is stored; re-run the same command to resume")
        raise typer.Exit(130) from None
    if as_json:
        print(json.dumps({"run_id": outcome.run_id, "model": str(spec), "judge": run.judge_identity,
                          "model_calls": outcome.responses.calls, "judge_calls": outcome.judgements.calls,
                          "failed": outcome.responses.failed + outcome.judgements.failed,
                          "summary": outcome.summary.to_dict()}, indent=2))
    else:
        print_summary(out, outcome.summary, run)
        out.print(f"model calls this time: {outcome.responses.calls}, judge calls: {outcome.judgements.calls}; "
                  f"stored in {store.path}")
    failures = outcome.responses.errors + outcome.judgements.errors
    if failures:
        err.print(f"[red]{outcome.responses.failed + outcome.judgements.failed} request(s) failed[/red] "
                  f"(first: {failures[0]}); re-run the same command to retry only those.")
        raise typer.Exit(1)


@app.command("runs")
def runs_cmd(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List the runs in the project's store with their harmfulness scores."""
    from .pipeline import summarise_run
    from .report.console import runs_table
    from .store import Store, project_db_path

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: run `medsafety eval` first or pass --project")
    with Store(path) as store:
        rows = [(info, summarise_run(store, info.id)) for info in store.runs()]
    if as_json:
        print(json.dumps([{"run_id": i.id, "model": i.model_spec, "judge": i.judge_identity, "n_items": i.n_items,
                           "created_at": i.created_at, "summary": s.to_dict()} for i, s in rows], indent=2))
    else:
        out.print(runs_table(rows))


@app.command("show")
def show_cmd(run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
             project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Print the summary of a stored run."""
    from .pipeline import summarise_run
    from .report.console import print_summary
    from .store import Store, project_db_path

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: pass --project")
    with Store(path) as store:
        info = store.run(run)
        summary = summarise_run(store, info.id)
    if as_json:
        print(json.dumps({"run_id": info.id, "summary": summary.to_dict()}, indent=2))
    else:
        print_summary(out, summary, info)


@app.command("export")
def export_cmd(run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
               out_path: Annotated[Path, typer.Option("--out", "-o", help="Output file (.jsonl, .csv or .parquet).")],
               fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: from --out).")] = None,
               project: ProjectOpt = None) -> None:
    """Export one row per item (request, response, score, judge reasoning) of a run."""
    from .export import export_run
    from .store import Store, project_db_path

    path = project_db_path(_project(project))
    if not path.exists():
        raise UserError(f"no run store at {path}: pass --project")
    with Store(path) as store:
        n = export_run(store, run, out_path, fmt)
    out.print(f"wrote {n} rows to {out_path}")


@app.command("demo")
def demo_cmd(data: Annotated[Path | None, typer.Option(help="Also evaluate the official MedSafety-Eval from this local copy (or $MEDSAFETYBENCH_DATA).")] = None,
             project: ProjectOpt = None,
             model_dir: Annotated[Path | None, typer.Option(help="Where to build/cache the tiny demo model.")] = None,
             max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per response.")] = 64) -> None:
    """Run the whole loop offline: build (once) a tiny local Llama, evaluate it on the bundled sample set
    (and the official MedSafety-Eval when a local copy is given), judge offline, print the summary."""
    from .demo import run_demo

    run_demo(out, err, data=data or (Path(os.environ["MEDSAFETYBENCH_DATA"]) if os.environ.get("MEDSAFETYBENCH_DATA") else None),
             project=_project(project), model_dir=model_dir, max_new_tokens=max_new_tokens)


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    out.print(__version__)


# Later stages keep their commands beside their code: each module listed here has `register(app)`.
COMMAND_MODULES: list[str] = ["medqa.cli", "report.commands", "finetune.cli", "generation.cli"]
for _module in COMMAND_MODULES:
    importlib.import_module(f"medsafetybench.{_module}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors are click's (exit 2); a `UserError` prints one line and exits 2."""
    try:
        app(args=argv, prog_name="medsafety")
    except UserError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
