"""`medsafety generate gcg` and `generate gcg-runs`: GCG from the command line, with every setting of a
standard comparison run as an option, and the runs (finished or at a checkpoint) in the store."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from ..cli_common import JsonOpt, ProjectOpt, err, out
from ..errors import UserError
from .cli_options import (
    FormatOpt,
    GeneratorOpt,
    GoalSetOpt,
    GoalsOpt,
    PrincipleOpt,
    VersionOpt,
    _print_report,
    _store,
    report_dict,
)
from .prompts import DEFAULT_VERSION, check_version


def _dtype(dtype: str, device: str | None) -> str:
    """GCG's `auto` dtype: float16 on a GPU (the official run's), float32 on the CPU."""
    if dtype != "auto":
        return dtype
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "float16" if device.startswith("cuda") else "float32"


def gcg_cmd(
    generator: GeneratorOpt,
    principle: PrincipleOpt,
    goal: Annotated[str | None, typer.Option(help="Goal text (default: the version's goal for the principle).")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target the reply should start with (default: the principle's official target, or the goals file's)."
        ),
    ] = None,
    goals: GoalsOpt = None,
    goal_set: GoalSetOpt = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps (official: 1000).")] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Substitutions kept per position (official: 256).")
    ] = None,
    candidates: Annotated[
        int | None,
        typer.Option("--candidates", "--search-width", min=1, help="Candidate suffixes per step (official: 512)."),
    ] = None,
    suffix_len: Annotated[int | None, typer.Option("--suffix-len", min=1, help="Suffix tokens (official: 20).")] = None,
    init: Annotated[
        str | None, typer.Option(help="Initial suffix: one token, repeated, or --suffix-len tokens (official: '*').")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    early_stop: Annotated[
        bool | None,
        typer.Option(
            "--early-stop/--no-early-stop",
            help="Stop when a check's output starts with the target (v2: off, as the official run; v1: on).",
        ),
    ] = None,
    check_every: Annotated[int | None, typer.Option(min=1, help="Steps between checks (official: 50).")] = None,
    check_tokens: Annotated[
        int | None, typer.Option(min=1, help="Tokens generated at a check (official: 800).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Candidates per forward pass (official: 300); memory only.")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(min=1, help="Steps between checkpoints in the store (default 10).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="auto, model, llama3 or llama2 (the official templates).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N (default: cuda when available).")] = None,
    dtype: Annotated[
        str,
        typer.Option(help="auto (float16 on a GPU as the official run, float32 on CPU), float32, bfloat16, float16."),
    ] = "auto",
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="v1: new tokens of the generation with the found suffix.")
    ] = 512,
    prompt_format: FormatOpt = "chat",
    version: VersionOpt = DEFAULT_VERSION,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Our GCG (Zou et al. 2023) with the official settings: optimise a suffix, then store the requests listed."""
    from ..models import load_model, parse_spec
    from .gcg import GCGConfig
    from .gcg_runs import generate_by_gcg

    check_version(version)
    if parse_spec(generator).backend != "hf":
        raise UserError("--generator: GCG needs gradients, so it needs a local model (hf:PATH)")
    cfg = GCGConfig.for_version(
        version,
        steps=steps,
        top_k=top_k,
        num_candidates=candidates,
        suffix_len=suffix_len,
        init=init,
        seed=seed,
        early_stop=early_stop,
        check_every=check_every,
        check_tokens=check_tokens,
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        template=template,
    )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    model = load_model(generator, prompt_format=prompt_format, device=device, dtype=_dtype(dtype, device))
    with _store(project) as store:
        try:
            result, report = generate_by_gcg(
                store,
                model,
                principle,
                cfg,
                goal=goal,
                target=target,
                goal_set=goal_set,
                goals_file=goals,
                max_new_tokens=max_new_tokens,
                log=None if as_json else err.print,
            )
        except KeyboardInterrupt:
            err.print("interrupted: run the same command again to resume from the last checkpoint")
            raise typer.Exit(130) from None
    if as_json:
        print(
            json.dumps(
                result.to_dict() | {"steps": result.steps_run, "generation": report_dict(report)},
                indent=1,
                ensure_ascii=False,
            )
        )
        if report.failed:
            raise typer.Exit(1)
        return
    out.print(
        f"GCG: best loss {result.best_loss:.3f} after {result.steps_run} step(s); output starts with the "
        f"target: {result.success}; refusal phrase in the output: {result.refused}; suffix {result.suffix!r}",
        markup=False,
        highlight=False,
    )
    _print_report(report, False, "gcg")


def runs_cmd(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """GCG runs in the store: finished ones, and interrupted ones waiting at a checkpoint."""
    from dataclasses import asdict

    from .gcg_runs import list_runs

    with _store(project) as store:
        runs = list_runs(store)
    if as_json:
        print(json.dumps([asdict(r) for r in runs], indent=1, ensure_ascii=False))
        return
    table = Table("run", "status", "p", "version", "steps", "best loss", "success", "refused", "model", "suffix")
    for r in runs:
        table.add_row(
            r.key[:12],
            r.status,
            str(r.principle or "-"),
            r.prompts_version,
            f"{r.steps_run}/{r.steps or '?'}",
            f"{r.best_loss:.3f}",
            "-" if r.success is None else str(r.success),
            "-" if r.refused is None else str(r.refused),
            Text(r.model),
            Text(r.suffix or ""),
        )  # model text: never markup
    out.print(table)
    out.print(f"{len(runs)} run(s)")


def register(app: typer.Typer) -> None:
    app.command("gcg")(gcg_cmd)
    app.command("gcg-runs")(runs_cmd)
