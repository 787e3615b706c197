"""What the `medsafety generate` command modules share (`cli.py`, `cli_gcg.py`): the typer sub-app, the
common options, the store opener and the call-report printer. Kept apart so both import it, and
`cli.py` imports `cli_gcg.py` only to register it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import err, out, project_dir

gen_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Grow the benchmark: generate, filter, review and export new harmful medical requests.",
)

GeneratorOpt = Annotated[
    str, typer.Option("--generator", "-g", help="Model spec of the generator: openai:MODEL[@URL], hf:PATH, vllm:PATH.")
]
PrincipleOpt = Annotated[
    int, typer.Option("--principle", "-p", min=1, max=9, help="AMA principle (1-9) the requests should violate.")
]
CountOpt = Annotated[int, typer.Option("--count", "-k", min=1, help="Requests asked for per call.")]
CallsOpt = Annotated[int, typer.Option("--calls", min=1, help="Calls to make (call i is seeded i when sampling).")]
TempOpt = Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature (0 = greedy).")]
MaxTokOpt = Annotated[int, typer.Option("--max-new-tokens", min=1, help="New tokens per reply.")]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--prompt-format",
        help="Prompt format for local models (chat, paper, paper-llama2, ..., llama2, ...; see medsafety eval --help).",
    ),
]
VersionOpt = Annotated[
    str, typer.Option("--prompts-version", help="Texts to use: msb-gen-v2 (the official code's) or msb-gen-v1.")
]
GoalSetOpt = Annotated[str | None, typer.Option("--goal-set", help="Official goals: prompts, tutorial or plain (v2).")]
GoalsOpt = Annotated[
    Path | None,
    typer.Option("--goals", help="A goals file (.jsonl or .csv with goal, target); row i is for principle i (v2)."),
]
RenderOpt = Annotated[
    str,
    typer.Option(
        "--render", help="auto, model (the model's prompt format) or llama3 (the official literal Llama-3 text)."
    ),
]


def _store(project: Path | None):
    from ..store import Store

    return Store.open_project(project_dir(project))


def report_dict(report) -> dict:
    return {k: getattr(report, k) for k in ("calls", "replies", "extracted", "added", "repeats", "failed", "errors")}


def _print_report(report, as_json: bool, what: str) -> None:
    d = report_dict(report)
    if as_json:
        print(json.dumps(d, indent=2))
    else:
        out.print(
            f"{what}: {d['calls']} model call(s), {d['extracted']} item(s) extracted, {d['added']} new "
            f"candidate(s) pending review, {d['repeats']} seen before in other replies"
        )
    if report.failed:
        err.print(f"[red]{report.failed} call(s) failed[/red] (first: {report.errors[0]}); re-run to retry them")
        raise typer.Exit(1)
