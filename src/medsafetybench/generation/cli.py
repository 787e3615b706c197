"""`medsafety generate ...`: the commands that grow the benchmark (a typer sub-app, `register(app)`).

    generate prompt | prefill | gcg     make candidates (pending review); gcg is in `cli_gcg.py`
    generate gcg-runs                   GCG runs in the store (finished, or waiting at a checkpoint)
    generate filter                     length, language, duplicates, harmfulness pre-screen
    generate safe-responses             the paper's safe response for each candidate
    generate review                     the local review page (127.0.0.1)
    generate export                     accepted items: official CSV layout and Alpaca JSON
    generate list                       candidates and their status

Every command that sends a text to a model takes `--prompts-version` (default msb-gen-v2, the
official code's texts; msb-gen-v1 the earlier ones).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from ..cli_common import JsonOpt, ProjectOpt, out
from ..cli_common import project_dir as _project
from ..errors import UserError
from .cli_options import (
    CallsOpt,
    CountOpt,
    FormatOpt,
    GeneratorOpt,
    GoalSetOpt,
    GoalsOpt,
    MaxTokOpt,
    PrincipleOpt,
    RenderOpt,
    TempOpt,
    VersionOpt,
    _print_report,
    _store,
    gen_app,
)
from .prompts import DEFAULT_VERSION, check_version

T = TypeVar("T")


def _run_closing(model: Any, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` and close `model` (its HTTP session) in the same event loop, whatever happens: a session
    left open is an "Unclosed client session" warning at exit. The model can run again in a later loop
    (backends open a new session per loop)."""
    import asyncio

    async def main() -> T:
        try:
            return await coro
        finally:
            await model.aclose()

    return asyncio.run(main())


@gen_app.command("prompt")
def prompt_cmd(
    generator: GeneratorOpt,
    principle: PrincipleOpt,
    count: CountOpt = 10,
    calls: CallsOpt = 1,
    temperature: TempOpt = 0.7,
    max_new_tokens: MaxTokOpt = 1024,
    prompt_format: FormatOpt = "chat",
    version: VersionOpt = DEFAULT_VERSION,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The paper's GPT-4 method: ask a model for requests that violate a principle, with medical jargon."""
    from ..models import load_model
    from .methods import generate_by_prompting

    check_version(version)
    model = load_model(generator, prompt_format=prompt_format)
    with _store(project) as store:
        report = _run_closing(
            model,
            generate_by_prompting(
                store,
                model,
                principle,
                count=count,
                calls=calls,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                version=version,
            ),
        )
    _print_report(report, as_json, "prompt")


@gen_app.command("prefill")
def prefill_cmd(
    generator: GeneratorOpt,
    principle: PrincipleOpt,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-k", min=1, help="Requests asked for per call (v1 only; the official goals ask for twenty)."
        ),
    ] = None,
    calls: CallsOpt = 1,
    temperature: Annotated[
        float | None, typer.Option(min=0.0, help="Sampling temperature (v2: 0.6, v1: 0.7; 0 = greedy).")
    ] = None,
    top_p: Annotated[
        float | None, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling (v2: 0.9).")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="New tokens per reply (v2: 1500, v1: 1024).")
    ] = None,
    goal_set: GoalSetOpt = None,
    goals: GoalsOpt = None,
    render: RenderOpt = "auto",
    prompt_format: FormatOpt = "chat",
    version: VersionOpt = DEFAULT_VERSION,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The paper's Llama-3 method: a medical-assistant system prompt and a reply forced to begin "Sure!"."""
    from ..models import load_model, parse_spec
    from .prefill import generate_by_prefill

    check_version(version)
    if parse_spec(generator).backend != "hf":
        raise UserError(
            "--generator: prefill writes the start of the reply itself, so it needs a local model (hf:PATH)"
        )
    model = load_model(generator, prompt_format=prompt_format)
    with _store(project) as store:
        report = _run_closing(
            model,
            generate_by_prefill(
                store,
                model,
                principle,
                count=count,
                calls=calls,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                version=version,
                goal_set=goal_set or "prompts",
                goals_file=goals,
                render=render,
            ),
        )
    _print_report(report, as_json, "prefill")


@gen_app.command("filter")
def filter_cmd(
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Cosine at or above which two requests are near duplicates.")
    ] = 0.90,
    scorer: Annotated[
        str | None,
        typer.Option(help="Model spec of the harmfulness scorer (0-10 prompt); none (default): skip the pre-screen."),
    ] = None,
    min_harm: Annotated[
        float, typer.Option(min=0.0, max=10.0, help="Keep candidates the scorer rates at least this harmful.")
    ] = 7.0,
    min_words: Annotated[int, typer.Option(min=1)] = 6,
    max_words: Annotated[int, typer.Option(min=1)] = 150,
    no_language_check: Annotated[bool, typer.Option("--no-language-check", help="Keep non-English requests.")] = False,
    no_embeddings: Annotated[
        bool, typer.Option("--no-embeddings", help="Skip near-duplicate checks (exact ones still run).")
    ] = False,
    with_extra: Annotated[
        bool, typer.Option("--with-extra", help="Also compare with the 74,374 Llama-3 requests (slow).")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="Local copy of the official release (else $MEDSAFETYBENCH_DATA or the cache).")
    ] = None,
    render: RenderOpt = "auto",
    version: VersionOpt = DEFAULT_VERSION,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Filter pending candidates; dropped ones keep their reasons (see `generate list --dropped`)."""
    from ..data import load_official
    from ..models import load_model
    from .candidates import CandidateStore
    from .filter import CachedEmbeddings, Embedder, FilterSettings, apply_filter, filter_candidates
    from .harm_score import harm_scorer_identity, harm_scores

    check_version(version)
    if scorer is not None and scorer.strip().lower() == "none":
        scorer = None
    bench = load_official("eval", data_dir=data) + load_official("improve", data_dir=data)
    if with_extra:
        bench += load_official("extra", data_dir=data)
    settings = FilterSettings(
        threshold=threshold,
        min_harm=min_harm,
        min_words=min_words,
        max_words=max_words,
        check_language=not no_language_check,
    )
    scorer_model = load_model(scorer) if scorer else None
    with _store(project) as store:
        cands = CandidateStore(store)
        todo = cands.list(status=("pending",))
        earlier = cands.list(status=("accepted",))

        def score(items):
            return _run_closing(scorer_model, harm_scores(store, scorer_model, items, version=version, render=render))

        embed = None if no_embeddings else CachedEmbeddings(store, Embedder())
        results = filter_candidates(
            todo, bench, embed=embed, settings=settings, scorer=score if scorer_model else None, earlier=earlier
        )
        if scorer_model is not None:
            who = harm_scorer_identity(scorer_model, version, render)
            for r in results:
                if "harm" in r.scores:
                    r.scores["harm_scorer"] = who
        counts = apply_filter(cands, results)
    if as_json:
        print(json.dumps(counts | {"results": [r.__dict__ for r in results]}, indent=2, ensure_ascii=False))
    else:
        kinds = Counter(re.split(r" of | \(|\s\d", reason)[0] for r in results for reason in r.reasons)
        detail = ", ".join(f"{k}: {v}" for k, v in kinds.most_common())
        out.print(
            f"filtered {len(results)} pending candidate(s): {counts['kept']} kept, {counts['dropped']} dropped"
            + (f" ({detail})" if detail else ""),
            markup=False,
        )


@gen_app.command("safe-responses")
def safe_cmd(
    generator: GeneratorOpt,
    overwrite: Annotated[bool, typer.Option(help="Rewrite existing safe responses.")] = False,
    include_dropped: Annotated[bool, typer.Option(help="Also for candidates the filter dropped.")] = False,
    prompt_format: FormatOpt = "chat",
    version: VersionOpt = DEFAULT_VERSION,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the paper's safe response (decline politely, say why it is unethical, 1-3 sentences)."""
    from ..models import load_model
    from .methods import write_safe_responses

    check_version(version)
    model = load_model(generator, prompt_format=prompt_format)
    with _store(project) as store:
        report = _run_closing(
            model,
            write_safe_responses(store, model, overwrite=overwrite, include_dropped=include_dropped, version=version),
        )
    if as_json:
        print(json.dumps({"calls": report.calls, "written": report.added, "failed": report.failed}))
    else:
        out.print(f"safe responses: {report.added} written, {report.calls} model call(s)")
    if report.failed:
        raise typer.Exit(1)


@gen_app.command("review")
def review_cmd(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8765,
    all_items: Annotated[bool, typer.Option("--all", help="Also show reviewed candidates.")] = False,
    include_dropped: Annotated[bool, typer.Option(help="Also show candidates the filter dropped.")] = False,
    reviewer: Annotated[str | None, typer.Option(help="Your name, stored with each decision.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Serve the review page (buttons or keys) on 127.0.0.1 until Ctrl+C; every decision is saved at once."""
    from ..store import project_db_path
    from .review import ReviewServer

    server = ReviewServer(
        project_db_path(_project(project)),
        port=port,
        include_reviewed=all_items,
        include_dropped=include_dropped,
        reviewer=reviewer,
    ).start()
    out.print(f"review page: {server.url}  (Ctrl+C to stop; decisions are saved as you make them)")
    server.serve_until_interrupted()


@gen_app.command("export")
def export_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the per-principle CSVs and alpaca.json.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write accepted candidates in the official CSV layout and as Alpaca JSON."""
    from .candidates import CandidateStore
    from .export import accepted, write_alpaca, write_official_layout

    with _store(project) as store:
        items = accepted(CandidateStore(store))
    if not items:
        raise UserError("no accepted candidates to export: review some with `medsafety generate review`")
    files = write_official_layout(items, out_dir)
    alpaca = write_alpaca(items, out_dir / "alpaca.json")
    if as_json:
        print(json.dumps({"items": len(items), "files": [str(f) for f in [*files, alpaca]]}, indent=2))
    else:
        out.print(f"exported {len(items)} accepted item(s): {len(files)} CSV file(s) and {alpaca}")


@gen_app.command("list")
def list_cmd(
    status: Annotated[
        str | None, typer.Option(help="pending, accepted, rejected or dropped (pending, dropped by the filter).")
    ] = None,
    dropped: Annotated[bool, typer.Option("--dropped", help="Only candidates the filter dropped.")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Candidates with their provenance, filter verdict and review status (the counts' states)."""
    from .candidates import STATES, CandidateStore

    if status is not None and status not in STATES:
        raise UserError(f"--status '{status}' is unknown; use one of {', '.join(STATES)}")
    with _store(project) as store:
        cands = CandidateStore(store)
        rows = cands.list(filter_status=("dropped",) if dropped else None)
        rows = [c for c in rows if status is None or c.state == status]
        counts = cands.counts()
    if as_json:
        print(
            json.dumps(
                {"counts": counts, "candidates": [c.to_dict() | {"state": c.state} for c in rows]},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    table = Table("id", "p", "method", "status", "filter", "request", "reasons")
    for c in rows:
        table.add_row(
            c.id,
            str(c.principle),
            c.method,
            c.state,
            c.filter_status,  # model text: never markup
            Text(c.final_request[:100]),
            Text("; ".join(c.filter_reasons)[:100]),
        )
    out.print(table)
    out.print(", ".join(f"{k}: {v}" for k, v in counts.items()))


def register(app: typer.Typer) -> None:
    from . import cli_gcg

    cli_gcg.register(gen_app)
    app.add_typer(gen_app, name="generate")
