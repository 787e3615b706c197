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

from ._version import __version__
from .cli_common import (
    FailAboveOpt,
    JsonOpt,
    ProjectOpt,
    csv_list,
    err,
    install_log_handler,
    open_existing_store,
    out,
)
from .cli_common import project_dir as _project
from .cost.cli import DryRunOpt, MaxCostOpt, PricesOpt
from .errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,
    help="Measure and improve the medical safety of LLMs (MedSafetyBench).",
)


@app.command("eval")
def eval_cmd(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="Model spec: openai:MODEL[@BASE_URL], anthropic:MODEL[@BASE_URL], hf:PATH[+ADAPTER], vllm:PATH. "
            "Repeat for several models (evaluated one after another on the same items).",
        ),
    ],
    judge: Annotated[
        list[str] | None,
        typer.Option(
            "--judge",
            "-j",
            help="'offline' (default; the offline judge v3, MiniLM features + MLP, approximate: chosen by the protocol "
            "in docs/judges.md), 'offline-v1', 'offline-v3', or a model spec for the paper's LLM judge, e.g. "
            "openai:gpt-3.5-turbo-0125, or a safety classifier over a model spec: llamaguard3[-1b][-mlc], "
            "llamaguard4[-mlc], wildguard, harmbench[-contextual|-modelcard|-val], shieldgemma, e.g. "
            "llamaguard3:hf:meta-llama/Llama-Guard-3-8B (docs/judges.md). Repeat for several judges (the first is "
            "the primary judge).",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            help="Short name for the run (one per --model, in order); shown instead of the spec. A second name for the "
            "same run is kept as an alias.",
        ),
    ] = None,
    model_version: Annotated[
        list[str] | None,
        typer.Option(
            "--model-version",
            help="A version name for an openai: model (one per --model, in order), part of its identity: for servers "
            "that do not say what weights they serve, or after they changed (docs/models.md).",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="eval (MedSafety-Eval, 900), improve (MedSafety-Improve, 900), extra (Llama-3 requests) or sample "
            "(bundled demo set)."
        ),
    ] = "eval",
    source: Annotated[str | None, typer.Option(help="Comma list of sources: gpt4, llama2, llama3.")] = None,
    principle: Annotated[
        str | None, typer.Option(help="Comma list or range of AMA principles, e.g. 1,4 or 2-5.")
    ] = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="Draw N items, stratified by principle and source (seeded by --seed).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --sample.")] = 0,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Keep the first N items (ordered by id; all principle 1 first: prefer --sample)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Local copy of the official release (else $MEDSAFETYBENCH_DATA, else download and cache)."),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="Your own requests: CSV, JSONL or Alpaca JSON with a request column.")
    ] = None,
    project: ProjectOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent requests for HTTP backends.")] = 16,
    judge_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Concurrent judge requests (default: --concurrency).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size for local (hf:) models.")] = 8,
    tensor_parallel_size: Annotated[
        int, typer.Option(min=1, help="GPUs to shard a vllm: model across (one node).")
    ] = 1,
    engine: Annotated[
        str,
        typer.Option(
            help="Where local models run: local (this process), ray (a local Ray cluster or $RAY_ADDRESS) or "
            "ray:ADDRESS; see docs/cluster.md."
        ),
    ] = "local",
    replicas: Annotated[
        int, typer.Option(min=1, help="Model replicas with --engine ray (one GPU each, or a tensor-parallel group).")
    ] = 1,
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request timeout in seconds for HTTP backends.")] = 120.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per response (paper: 512).")] = 512,
    system_prompt: Annotated[
        str | None,
        typer.Option(
            help="System prompt (default: the Llama-2 default system prompt, as in the paper; with a paper-* format, "
            "the system text the paper used for that family; 'none' for none)."
        ),
    ] = None,
    prompt_format: Annotated[
        str,
        typer.Option(
            help="Prompt format for local models: chat (tokenizer template); paper (the paper's exact prompt for the "
            "model's family, or name one: paper-llama2, paper-mistral, paper-vicuna, paper-medalpaca, "
            "paper-med42, paper-pythia); or a family's own chat format (not the paper's): llama2, mistral, "
            "vicuna, medalpaca, med42, alpaca, raw; verbatim (raw with no special tokens added). On openai: "
            "models raw and verbatim send a text prompt to /v1/completions."
        ),
    ] = "chat",
    retry_unscored: Annotated[
        bool, typer.Option(help="Ask the judge again for judgements stored as unscored.")
    ] = False,
    fail_above: FailAboveOpt = None,
    by_principle: Annotated[
        bool,
        typer.Option(
            "--by-principle",
            help="Also print the tables by principle and by source, for every judge (else: the primary judge's summary "
            "and one line per other judge; `medsafety show RUN` prints them later).",
        ),
    ] = False,
    context_window: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Context window in tokens of openai: models and judges, for the too-long-request warning (default "
            "128000; hf: reads it from the model).",
        ),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify", help="Load a modified copy of the official release without checking its SHA-256 manifest."
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    max_cost: MaxCostOpt = None,
    prices: PricesOpt = None,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send openai: and anthropic: models and LLM judges through the providers' batch APIs (half price, "
            "results within 24 h): respond, then judge; resumable (docs/models.md).",
        ),
    ] = False,
    batch_timeout: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="With --batch: seconds to wait for batches; then they are cancelled, what they finished is stored and "
            "the rest is asked live.",
        ),
    ] = None,
    batch_poll: Annotated[float, typer.Option(min=0.01, help="With --batch: seconds between polls of a batch.")] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate one or more models on MedSafetyBench: respond, judge, summarise. Every call is cached in the
    store; re-running the same command makes no model calls, and an interrupted run resumes. Exit status: 0 ok,
    1 requests failed (re-run to retry), 2 usage error, 3 --fail-above exceeded, 4 nothing could be scored,
    5 stopped at --max-cost (re-run to resume)."""
    from .evaluation.preflight import check_specs
    from .evaluation.tasks import ItemSelection, settings_from
    from .judging import is_offline
    from .models.formats import resolve_spec_format
    from .models.openai_backend import check_model_version
    from .models.spec import parse_spec, redact_spec, validate_spec
    from .principles import parse_principles
    from .study.cli import execute
    from .study.results import Gate
    from .study.spec import Study, StudyJudge, StudyModel, check_name

    gate = Gate.parse(fail_above)
    judges = judge or ["offline"]
    names = name or []
    if len(names) > len(model):
        raise UserError(f"--name given {len(names)} times for {len(model)} --model: give at most one name per model")
    versions = model_version or []
    if len(versions) > len(model):
        raise UserError(
            f"--model-version given {len(versions)} times for {len(model)} --model: give at most one per model"
        )

    if not dry_run:  # a dry run calls nothing, so it needs no key
        check_specs([], judges)  # judges first: paths, extras and keys, before anything is created
    window = {"context_window": context_window} if context_window else {}
    models = []
    for k, m in enumerate(model):
        version = check_model_version(versions[k]) if k < len(versions) else None
        if version and not m.strip().startswith("openai:"):
            raise UserError(
                f"--model-version '{version}' is for openai: models (their servers may not say which "
                f"weights they serve); {redact_spec(m)} is identified by its weights already"
            )
        spec = parse_spec(m) if dry_run else validate_spec(m)
        fmt = resolve_spec_format(spec, prompt_format)  # `paper`: the family's paper-* format (openai: as given)
        if prompt_format == "paper" and fmt != prompt_format:
            err.print(f"note: --prompt-format paper: using {fmt} for {escape(spec.name)}", soft_wrap=True)
        model_name = names[k] if k < len(names) else None
        if model_name is not None:
            check_name(model_name, [x.name for x in models], "model")
        # the spec as typed (credentials included) stays in memory for loading; name and display are safe
        models.append(
            StudyModel(
                model_name or spec.display,
                m.strip(),
                prompt_format,
                settings=settings_from(system_prompt, max_new_tokens, fmt),
                options={
                    "concurrency": concurrency,
                    "timeout": timeout,
                    "batch_size": batch_size,
                    "tensor_parallel_size": tensor_parallel_size,
                    **window,
                    **({"model_version": version} if version else {}),
                    **({"replicas": replicas} if replicas != 1 else {}),
                },
                parsed=spec,
            )
        )
    if len({m.spec for m in models}) != len(models):
        raise UserError("the same --model is given twice")
    judge_opts = {
        "concurrency": judge_concurrency or concurrency,
        "timeout": timeout,
        "batch_size": batch_size,
        **window,
    }
    study_judges = []
    for k, j in enumerate(judges):
        study_judges.append(StudyJudge(f"judge{k + 1}", j, judge_opts))
    items = ItemSelection(
        split,
        tuple(csv_list(source)) if source else None,
        parse_principles(principle),
        sample,
        seed,
        limit,
        str(input_file) if input_file else None,
        str(data) if data else None,
        verify=not no_verify,
    )
    from .models.engine import parse_engine

    engine_name, _ = parse_engine(engine)
    if replicas != 1 and engine_name == "local":
        raise UserError(f"--replicas {replicas} needs --engine ray (the local engine runs one copy of the model)")
    study = Study(
        "eval",
        Path("<command line>"),
        items,
        tuple(study_judges),
        tuple(models),
        engine=engine.strip(),
        tag_runs=False,
        batch=batch,
        batch_timeout=batch_timeout,
        batch_poll=batch_poll,
    )
    note = None
    if any(is_offline(j) for j in judges):
        note = (
            "the offline judge approximates the paper's GPT-3.5 judge (see README for its measured agreement); "
            "use --judge openai:gpt-3.5-turbo-0125 for paper-comparable scores."
        )
    execute(
        study,
        project,
        as_json=as_json,
        gate=gate,
        retry_unscored=retry_unscored,
        single=len(models) == 1,
        note=note,
        dry_run=dry_run,
        max_cost=max_cost,
        prices=prices,
        by_principle=by_principle,
        checked=True,
    )


@app.command("runs")
def runs_cmd(
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    tag: Annotated[str | None, typer.Option("--tag", help="Only runs carrying this tag (e.g. study:paper).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only runs of this kind: safety or overrefusal.")] = None,
    add_tag: Annotated[
        list[str] | None, typer.Option("--add-tag", help="Add a tag to the runs given with --run.")
    ] = None,
    remove_tag: Annotated[
        list[str] | None, typer.Option("--remove-tag", help="Remove a tag from the runs given with --run.")
    ] = None,
    rename: Annotated[str | None, typer.Option("--rename", help="Give the run given with --run this name.")] = None,
    rm: Annotated[
        bool, typer.Option("--rm", help="Forget the runs given with --run (responses and judgements stay cached).")
    ] = False,
    run: Annotated[
        list[str] | None, typer.Option("--run", help="A run id, unique prefix or name to change (repeatable).")
    ] = None,
) -> None:
    """List the runs in the project's store (name, kind, items, judge, harmfulness, refusal rate); tag, rename
    or forget runs with --run and --add-tag/--remove-tag/--rename/--rm."""
    from .evaluation.pipeline import summarise_run
    from .report.console import runs_renderable

    changing = bool(add_tag or remove_tag or rename is not None or rm)
    if changing and not run:
        raise UserError("--add-tag, --remove-tag, --rename and --rm need the runs to change: give --run RUN")
    if run and not changing:
        raise UserError("--run names runs to change: add --add-tag, --remove-tag, --rename or --rm")
    if rename is not None and len(run or []) != 1:
        raise UserError("--rename needs exactly one --run")
    with open_existing_store(project) as store:
        if changing:
            infos = [store.run(r) for r in run or []]
            for info in infos:
                if rm:
                    store.delete_run(info.id)
                    out.print(f"forgot run {info.id} ({escape(info.label)})")
                    continue
                tags = (set(info.tags) | set(add_tag or [])) - set(remove_tag or [])
                store.set_run_fields(info.id, name=rename, tags=sorted(tags))
                out.print(
                    f"run {info.id}: name {escape(rename if rename is not None else info.name or '-')}, "
                    f"tags {escape(', '.join(sorted(tags)) or '-')}"
                )
            return
        if kind is not None and kind not in ("safety", "overrefusal"):
            raise UserError(f"--kind '{kind}' is unknown: use safety or overrefusal")
        rows = [(info, summarise_run(store, info.id)) for info in store.runs(kind=kind, tag=tag)]
    if as_json:
        from .cost.pricing import load_prices
        from .cost.spent import run_spent

        prices = load_prices()
        print(
            json.dumps(
                [
                    {
                        "run_id": i.id,
                        "name": i.name,
                        "aliases": list(i.aliases),
                        "model": i.model_spec,
                        "model_identity": i.model_identity,
                        "kind": i.kind,
                        "tags": list(i.tags),
                        "judge": i.judge_identity,
                        "judges": list(i.judges),
                        "n_items": i.n_items,
                        "items": i.provenance.get("items"),
                        "items_digest": i.items_digest,
                        "settings_digest": i.settings_digest,
                        "created_at": i.created_at,
                        "spent": {
                            x.role: x.to_dict() for x in run_spent(i.model_identity, i.judge_identity, s.tokens, prices)
                        },
                        "summary": s.to_dict(),
                    }
                    for i, s in rows
                ],
                indent=2,
            )
        )
    else:
        out.print(runs_renderable(rows, out.width))


@app.command("show")
def show_cmd(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Judge to show: its identity or any name --judge of eval accepts, e.g. offline-v2 (default: every "
            "judge of the run).",
        ),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the summary of a stored run (one block per judge), and with two judges or more their jury:
    mean score and majority harmful, Krippendorff's alpha, Cohen's kappa and the items they disagree on."""
    from .evaluation.pipeline import summarise_run
    from .report.console import print_summary

    with open_existing_store(project) as store:
        info = store.run(run)
        judges = (
            [store.run_judge_identity(info.id, judge)]
            if judge
            else [j for j in info.judges or (info.judge_identity,) if j and not _human(j)]
        )
        summaries = {j: summarise_run(store, info.id, judge_identity=j) for j in judges}
        cals = _calibration(store, info.id, [j for j in judges if not _human(j)])
        jury, principles = _jury(store, info.id, judge)
    if as_json:
        from .cost.spent import run_spent

        first = next(iter(summaries.values()), None)
        print(
            json.dumps(
                {
                    "run_id": info.id,
                    "name": info.name,
                    "aliases": list(info.aliases),
                    "model": info.model_spec,
                    "model_identity": info.model_identity,
                    "judge": info.judge_identity,
                    "settings": info.settings,
                    "provenance": info.provenance,
                    "items_digest": info.items_digest,
                    "settings_digest": info.settings_digest,
                    "summary": first.to_dict() if first else None,
                    "summaries": {j: s.to_dict() for j, s in summaries.items()},
                    "spent": {
                        j: {x.role: x.to_dict() for x in run_spent(info.model_identity, j, s.tokens)}
                        for j, s in summaries.items()
                    },
                    "calibration": [c.to_dict() for c in cals],
                    "jury": jury.to_dict() if jury else None,
                },
                indent=2,
            )
        )
    else:
        for j, summary in summaries.items():
            print_summary(out, summary, info, j)
        _print_calibration(cals)
        if jury is not None:
            from .labels.jury_report import jury_renderable

            out.print(jury_renderable(jury, out.width, principles))


def _jury(store, run_id: str, judge: str | None) -> tuple:  # type: ignore[no-untyped-def]
    """The run's jury (its machine judges together; labels/jury.py) unless one judge was asked for."""
    if judge:
        return None, {}
    from .labels.jury_report import principles_of, run_jury

    j = run_jury(store, run_id)
    return j, (principles_of(store, run_id) if j else {})


@app.command("rejudge")
def rejudge_cmd(
    run: Annotated[str, typer.Argument(help="Run id, unique prefix or name.")],
    judge: Annotated[
        list[str], typer.Option("--judge", "-j", help="Judge spec to add (as in `eval --judge`); repeat for several.")
    ],
    project: ProjectOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent judge requests.")] = 16,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size for local (hf:) judge models.")] = 8,
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request timeout in seconds for HTTP judges.")] = 120.0,
    retry_unscored: Annotated[
        bool, typer.Option(help="Ask these judges again where they left a case unscored.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Judge a finished run's stored responses with other judges, without its model (it is never loaded or
    called): the judges join the run, their judgements are cached like any, and `show` gives the jury.
    Re-running makes no new judgements. Exit status: 0 ok, 1 judge requests failed (re-run to retry)."""
    from .evaluation.pipeline import rejudge_run
    from .evaluation.preflight import check_specs
    from .judging import load_judge
    from .report.console import RichProgress

    check_specs([], judge)  # an unknown or unusable judge fails here, before the store is touched
    if len(set(judge)) != len(judge):
        raise UserError("the same --judge is given twice")
    with open_existing_store(project) as store:
        info = store.run(run)
        if info.kind != "safety":
            raise UserError(f"run {info.id} is a {info.kind} run (refusal-detected, not judged): rejudge a safety run")
        rows = store.run_rows(info.id)
        n_responses = sum(1 for r in rows if r.response is not None)
        if not n_responses:
            raise UserError(f"run {info.id} has no stored responses: run `medsafety eval` to get them first")
        judges = [
            load_judge(j, role="--judge", concurrency=concurrency, timeout=timeout, batch_size=batch_size)
            for j in judge
        ]
        with RichProgress(err, enabled=not as_json) as progress:
            reports = rejudge_run(store, info.id, judges, progress, retry_unscored=retry_unscored)
        from .labels.jury_report import principles_of, run_jury

        jury = run_jury(store, info.id)
        principles = principles_of(store, info.id) if jury else {}
    failed = sum(r.failed for r in reports.values())
    if as_json:
        print(
            json.dumps(
                {
                    "run_id": info.id,
                    "responses": n_responses,
                    "items": len(rows),
                    "judges": {
                        k: {"calls": r.calls, "stored": r.stored, "failed": r.failed, "errors": r.errors}
                        for k, r in reports.items()
                    },
                    "jury": jury.to_dict() if jury else None,
                },
                indent=2,
            )
        )
    else:
        out.print(
            f"run {info.id} ({escape(info.label)}): {n_responses} stored responses of {len(rows)} items; "
            "the model was not called",
            soft_wrap=True,
        )
        for identity, r in reports.items():
            out.print(f"  {escape(identity)}: {r.calls} judge calls, {r.stored} new judgements", soft_wrap=True)
        if jury is not None:
            from .labels.jury_report import jury_renderable

            out.print(jury_renderable(jury, out.width, principles))
    if failed:
        first = next((e for r in reports.values() for e in r.errors), "")
        err.print(
            f"[red]{failed} judge request(s) failed[/red] (first: {escape(first)}); re-run the same command "
            "to retry only those.",
            soft_wrap=True,
        )
        raise typer.Exit(1)


# --- human labels in `show` (labels/report.py renders them) ---------------------------------------------
def _human(identity: str) -> bool:
    """People's labels (`human:<labeller>`) show as calibration of the machine judges, not as a summary of
    their own (`--judge human:NAME` still shows one)."""
    return identity.startswith("human:")


def _calibration(store, run_id: str, judges: list[str]) -> list:  # type: ignore[no-untyped-def]
    """Each judge against each person who labelled a sample of the run (empty when nobody did)."""
    from .labels.calibration import calibrate_run

    return [c for j in judges for c in calibrate_run(store, run_id, judge_identity=j)]


def _print_calibration(cals: list) -> None:
    if cals:
        from .labels.report import calibration_renderable

        out.print(calibration_renderable(cals))


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output file (.jsonl, .csv or .parquet).")],
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet (default: from --out).")] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Judge whose judgements to export: its identity or any name --judge of eval accepts, e.g. offline-v2 "
            "(default: the run's primary judge).",
        ),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Export one row per item (request, response, score, judge reasoning) of a run."""
    from .evaluation.export import export_run

    with open_existing_store(project) as store:
        missing = next((p for p in reversed(out_path.absolute().parents) if not p.exists()), None)
        n = export_run(store, run, out_path, fmt, judge)
    if missing is not None:
        err.print(f"note: created the folder {escape(str(out_path.parent))} for --out", soft_wrap=True)
    out.print(f"wrote {n} rows to {escape(str(out_path))}", soft_wrap=True)


@app.command("demo")
def demo_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Local copy of the official release (else $MEDSAFETYBENCH_DATA, the cache, or the pinned download)."
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download/--no-download", help="Download the pinned official release when no local copy is found."
        ),
    ] = True,
    medqa_dir: Annotated[
        Path | None,
        typer.Option(
            "--medqa-dir",
            help="Medical QA folder: MedQA accuracy before/after with McNemar's test "
            "(else $MEDSAFETYBENCH_MEDQA_DATA).",
        ),
    ] = None,
    judge: Annotated[
        str,
        typer.Option(
            "--judge", "-j", help="Judge spec for every demo run (default: offline, the default offline judge)."
        ),
    ] = "offline",
    sample: Annotated[
        int,
        typer.Option(
            min=9, help="MedSafety-Eval requests in the fine-tuning comparison (stratified by principle and source)."
        ),
    ] = 90,
    project: ProjectOpt = None,
    model_dir: Annotated[Path | None, typer.Option(help="Where to build/cache the tiny demo model.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="New tokens per response.")] = 128,
) -> None:
    """Run the whole loop offline on a tiny local Llama: a complying base model judged on the bundled sample
    set; with the official release, safety LoRA on MedSafety-Improve n=100 and the base and the adapter
    compared (harmfulness, refusal rate, over-refusal, medical QA with McNemar's test); an HTML report."""
    from .demo import run_demo

    env = os.environ.get
    run_demo(
        out,
        err,
        data=data or (Path(env("MEDSAFETYBENCH_DATA")) if env("MEDSAFETYBENCH_DATA") else None),
        project=_project(project),
        model_dir=model_dir,
        max_new_tokens=max_new_tokens,
        judge=judge,
        medqa_dir=medqa_dir or (Path(env("MEDSAFETYBENCH_MEDQA_DATA")) if env("MEDSAFETYBENCH_MEDQA_DATA") else None),
        download=download,
        sample=sample,
    )


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    out.print(__version__)


# Later stages keep their commands beside their code: each module listed here has `register(app)`.
COMMAND_MODULES: list[str] = [
    "medqa.cli",
    "report.commands",
    "finetune.cli",
    "generation.cli",
    "study.cli",
    "inspect_eval.cli",
    "labels.cli",
    "batch.cli",
]
for _module in COMMAND_MODULES:
    importlib.import_module(f"medsafetybench.{_module}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors are click's (exit 2); a `UserError` prints one line and exits 2."""
    install_log_handler()
    try:
        app(args=argv, prog_name="medsafety")
    except UserError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
