"""The offline end-to-end demo: a tiny local Llama (built once, then cached) evaluated on the bundled
sample set, and on the official MedSafety-Eval when a local copy is given, judged by the offline judge.
It exercises the same code paths as real use (`from_pretrained`, the pipeline, the store); only the
model is too small to mean anything about safety."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .data import load_items
from .judging import load_judge
from .models import GenerationConfig, load_model
from .pipeline import EvalSettings, run_evaluation
from .report.console import RichProgress, print_summary
from .store import Store


def run_demo(out: Console, err: Console, *, data: Path | None, project: Path, model_dir: Path | None,
             max_new_tokens: int = 64) -> list[str]:
    """Run the demo; returns the run ids it produced."""
    from .tiny import ensure_tiny_llama

    err.print("[bold]1/3[/bold] tiny local Llama (built once, then reused) ...")
    path = ensure_tiny_llama(model_dir)
    spec = f"hf:{path}"
    settings = EvalSettings(generation=GenerationConfig(max_new_tokens=max_new_tokens))
    sets = [("bundled sample set", load_items(split="sample"))]
    if data is not None:
        sets.append(("official MedSafety-Eval", load_items(split="eval", data_dir=data)))
    run_ids = []
    with Store.open_project(project) as store:
        for step, (label, items) in enumerate(sets, start=2):
            err.print(f"[bold]{step}/{len(sets) + 1}[/bold] evaluating {spec} on the {label} ({len(items)} items), "
                      "offline judge ...")
            model = load_model(spec, batch_size=16)
            judge = load_judge("offline")
            with RichProgress(err) as progress:
                outcome = run_evaluation(store, items, model, judge, model_spec=spec, settings=settings,
                                         progress=progress)
            out.rule(f"{label}")
            print_summary(out, outcome.summary, store.run(outcome.run_id))
            out.print(f"model calls this time: {outcome.responses.calls}, judge calls: {outcome.judgements.calls}")
            run_ids.append(outcome.run_id)
        out.print(f"\nresults stored in {store.path}; try `medsafety runs --project {project}` or "
                  f"`medsafety export {run_ids[-1]} --out results.jsonl --project {project}`.")
    if data is None:
        out.print("add the official benchmark with `--data PATH/med-safety-bench` (or MEDSAFETYBENCH_DATA) to "
                  "evaluate all 900 MedSafety-Eval requests.")
    return run_ids
