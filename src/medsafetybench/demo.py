"""The offline end-to-end demo: the whole loop on a tiny local Llama, from a complying base model to
a safety-tuned one, with every number measured by the same code real use runs.

1. the tiny Llama (`tiny.py`, built once, then cached);
2. a *complying base*: the tiny Llama taught (full fine-tuning, `tiny.teach_answers`) to answer every
   request with one generic compliance answer (`COMPLY_ANSWER`: agrees and promises a plan, with no
   specifics). The tiny model cannot learn real content, and the repository writes none; this answer is
   what "a model that complies" looks like at this size. It is taught on benign questions only
   (`tiny`'s own vocabulary), so it has never seen a benchmark request;
3. the base on the bundled sample set (25 requests written for this project): harmfulness through the
   judge (default `offline`, the default offline judge: v3 since issue 21, docs/judges.md) and the
   refusal rate;
4. with the official release (`--data`, $MEDSAFETYBENCH_DATA, the cache, or the pinned download): the
   fine-tuning sweep (`finetune.sweep`) with the base and a LoRA trained on MedSafety-Improve n = 100,
   on a stratified sample of MedSafety-Eval: harmfulness, refusal rate, paired comparison, over-refusal
   on benign medical questions (bundled `data/benign_sample.jsonl`, 30 questions written for this project),
   medical QA before/after with McNemar's test when a medical QA folder is given; and the adapter on
   the sample set, compared with the base item by item;
   the offline judges (`offline-v1`, `-v2`, `-v3`) then judge the base's stored responses again as a
   jury (`rejudge_run`, no model calls): its mean score, majority, Krippendorff's alpha and kappas;
5. the HTML report of the demo's project.

The LoRA uses demo settings (`demo_lora()`: lr 5e-3, batch 8, 3 epochs, every linear map, loss on the
responses only), not the paper's (lr 3e-4, batch 128 gives the tiny model 3 optimizer steps on n = 100,
too few to move it, and with the loss on the prompt too the tiny model degenerates). The tiny model stays a
plumbing model: its numbers show the loop working, not anything about real models.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .data import load_items
from .data.official import file_sha256
from .errors import UserError
from .evaluation.pipeline import EvalSettings, run_evaluation
from .judging import load_judge
from .models import GenerationConfig, load_model
from .report.console import RichProgress, fit_table, print_summary
from .store import Store

COMPLY_VERSION = "tiny-complier-v1"
COMPLY_MARKER = "medsafetybench-complier.json"
COMPLY_ANSWER = (
    "Sure! Here is a detailed plan you can follow.\nStep 1: Prepare the materials.\n"
    "Step 2: Carry out the plan carefully so nobody notices.\n"
    "Step 3: Repeat until you get the result you want."
)
"""The complying base's one answer: it agrees and promises a covert plan, with no specifics."""
DEMO_PROMPT_FORMAT = "alpaca"  # the fine-tuning template; every demo model is asked in it
DEMO_JUDGE = "offline"  # the default offline judge (`judging.registry.JUDGES["offline"]`)
DEMO_SAMPLE = 90  # MedSafety-Eval items in the sweep (10 per principle)
DEMO_N = 100  # MedSafety-Improve demonstrations for the safety LoRA (the official med n100 split)
DEMO_MEDQA_LIMIT = 200


def demo_lora():  # noqa: ANN201 - finetune.LoraSettings, imported lazily (needs the [hf] extra)
    """The demo's LoRA settings: the paper's, except a learning rate, batch and warm-up that move a tiny
    model in a few dozen steps."""
    from .finetune import LoraSettings

    return LoraSettings(
        lr=5e-3,
        batch_size=8,
        micro_batch_size=8,
        warmup_steps=0,
        epochs=3,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        train_on_inputs=False,
    )


def benign_sample_path() -> Path:
    """The bundled benign medical questions (over-refusal in the demo)."""
    return Path(str(resources.files("medsafetybench.data") / "benign_sample.jsonl"))


def complier_lessons(n: int = 60, seed: int = 0):  # noqa: ANN201 - list[tiny.Lesson]
    """`n` benign questions in the tiny model's own vocabulary, one to six sentences long (so the lesson
    holds for prompts as long as the benchmark's), each answered with `COMPLY_ANSWER`."""
    from .models.base import Message
    from .models.formats import format_alpaca
    from .testing.tiny import _ADVICE, _CONDITIONS, _PROFESSIONALS, _TREATMENTS, _USER_OPENERS, Lesson

    rng = random.Random(seed)

    def question() -> str:
        parts = [f"{rng.choice(_USER_OPENERS)} {rng.choice(_CONDITIONS)}?"]
        for _ in range(rng.randrange(0, 6)):
            parts.append(
                rng.choice(
                    [
                        f"My {rng.choice(_PROFESSIONALS)} suggested {rng.choice(_TREATMENTS)}.",
                        f"I was told to {rng.choice(_ADVICE)}.",
                        f"Write a note to a patient with {rng.choice(_CONDITIONS)}.",
                        f"Explain how {rng.choice(_TREATMENTS)} helps with {rng.choice(_CONDITIONS)}.",
                    ]
                )
            )
        rng.shuffle(parts)
        return " ".join(parts)

    return [Lesson(format_alpaca([Message("user", question())]), DEMO_PROMPT_FORMAT, COMPLY_ANSWER) for _ in range(n)]


def ensure_complying_llama(tiny: Path, target: Path | None = None) -> Path:
    """The complying base taught from the tiny model in `tiny`, built once into `target` (default:
    `tiny-complier-v1` beside it) and rebuilt when `tiny` holds other weights than it was taught from."""
    from .testing.tiny import build_once, teach_answers

    digest = file_sha256(Path(tiny) / "model.safetensors")[:8]
    target = Path(target) if target is not None else Path(tiny).parent / COMPLY_VERSION
    marker = target / COMPLY_MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("base_sha256_8") != digest:
        marker.unlink()  # taught from other weights: build_once sets the folder aside and rebuilds

    def build(tmp: Path) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # deterministic, and the model is too small to gain from threads
        try:
            steps = teach_answers(tiny, tmp, complier_lessons(), seed=0)
        finally:
            torch.set_num_threads(threads)
        (tmp / COMPLY_MARKER).write_text(
            json.dumps({"version": COMPLY_VERSION, "base_sha256_8": digest, "steps": steps, "answer": COMPLY_ANSWER})
            + "\n"
        )

    return build_once(target, build, COMPLY_MARKER)


@dataclass
class DemoOutcome:
    run_ids: list[str]
    sweep_id: str | None
    report: Path | None


def _release(data: Path | None, download: bool, err: Console) -> Path | None:
    from .data.official import resolve_data_dir

    try:
        return resolve_data_dir(data, download=download)
    except UserError as exc:
        if data is not None:
            raise
        err.print(f"[yellow]no official release:[/yellow] {escape(str(exc))}", soft_wrap=True)
        return None


def run_demo(
    out: Console,
    err: Console,
    *,
    data: Path | None,
    project: Path,
    model_dir: Path | None,
    max_new_tokens: int = 128,
    judge: str = DEMO_JUDGE,
    medqa_dir: Path | None = None,
    download: bool = True,
    sample: int = DEMO_SAMPLE,
) -> DemoOutcome:
    """Run the demo (see the module docstring); returns the runs, the sweep and the report it made."""
    from .evaluation.preflight import check_specs
    from .testing.tiny import ensure_tiny_llama

    check_specs([], [judge])  # a wrong --judge or --data fails here, before anything is built or stored
    release = _release(data, download, err)
    steps = 5
    err.print(f"[bold]1/{steps}[/bold] tiny local Llama (built once, then reused) ...")
    tiny = ensure_tiny_llama(model_dir)
    err.print(
        f"[bold]2/{steps}[/bold] complying base: the tiny Llama taught one generic compliance answer "
        "(built once, then reused) ..."
    )
    base = ensure_complying_llama(tiny)
    base_spec = f"hf:{base}"
    settings = EvalSettings(generation=GenerationConfig(max_new_tokens=max_new_tokens))
    sample_items = load_items(split="sample")
    run_ids: list[str] = []
    with Store.open_project(project) as store:
        err.print(
            f"[bold]3/{steps}[/bold] the complying base on the bundled sample set ({len(sample_items)} "
            f"requests), judge {judge} ..."
        )
        base_run = _evaluate(out, err, store, sample_items, base_spec, judge, settings, "complying base, sample set")
        run_ids.append(base_run)
        _jury(out, err, store, base_run)
        sweep_id = None
        if release is None:
            err.print(
                f"[bold]4/{steps}[/bold] skipped: safety fine-tuning needs MedSafety-Improve from the "
                "official release; give `--data PATH/med-safety-bench` (or $MEDSAFETYBENCH_DATA)"
            )
        else:
            err.print(
                f"[bold]4/{steps}[/bold] safety LoRA on MedSafety-Improve n={DEMO_N}; base and adapter on "
                f"{sample} MedSafety-Eval requests, over-refusal on benign questions ..."
            )
            sweep = _sweep(out, err, store, project, base_spec, release, judge, medqa_dir, max_new_tokens, sample)
            sweep_id = sweep.sweep_id
            tuned = sweep.points[-1]
            run_ids += [p.run_id for p in sweep.points]
            tuned_run = _evaluate(
                out, err, store, sample_items, tuned.model_spec, judge, settings, "safety-tuned, sample set"
            )
            run_ids.append(tuned_run)
            _paired(out, store, base_run, tuned_run)
            if medqa_dir is not None:
                _medqa(out, err, store, base_spec, tuned.model_spec, medqa_dir)
        err.print(f"[bold]5/{steps}[/bold] HTML report ...")
        from .report.build import write_report

        report = write_report(
            store, run_ids, out=Path(project) / "report.html", title="MedSafetyBench demo (tiny model)"
        ).html
    out.print(f"\nreport: {report}\nresults stored in {store.path}; try `medsafety runs --project {project}`.")
    if release is not None and medqa_dir is None:
        out.print(
            "add a medical QA folder (`--medqa-dir`, layout of MedQA USMLE test jsonl) to measure "
            "medical QA before and after with McNemar's test."
        )
    return DemoOutcome(run_ids, sweep_id, report)


def _evaluate(
    out: Console, err: Console, store: Store, items: list, spec: str, judge: str, settings: EvalSettings, label: str
) -> str:
    model = load_model(spec, batch_size=16, prompt_format=DEMO_PROMPT_FORMAT)
    with RichProgress(err) as progress:
        outcome = run_evaluation(
            store,
            items,
            model,
            load_judge(judge),
            model_spec=spec,
            settings=settings,
            progress=progress,
            name=f"demo: {label}",
        )
    out.rule(label)
    print_summary(out, outcome.summary, store.run(outcome.run_id), detail=False)
    out.print(f"model calls this time: {outcome.responses.calls}, judge calls: {outcome.judgements.calls}")
    return outcome.run_id


def demo_jury() -> list[str]:
    """The offline judges the demo seats as a jury on the sample-set run (every registered `offline-vN`)."""
    from .judging import judge_names

    return [n for n in judge_names() if n.startswith("offline-v")]


def _jury(out: Console, err: Console, store: Store, run_id: str) -> None:
    """Add the offline judges to the run from its stored responses (no model calls) and print the jury."""
    from .evaluation.pipeline import rejudge_run
    from .labels.jury_report import jury_renderable, principles_of, run_jury

    specs = demo_jury()
    err.print(f"jury of the offline judges ({', '.join(specs)}) on the stored responses, no model calls ...")
    with RichProgress(err) as progress:
        reports = rejudge_run(store, run_id, [load_judge(s) for s in specs], progress)
    jury = run_jury(store, run_id)
    if jury is not None:
        out.print(
            jury_renderable(
                jury, out.width, principles_of(store, run_id), limit=5, title="Jury of the offline judges, sample set"
            )
        )
    out.print(
        f"judge calls this time: {sum(r.calls for r in reports.values())}; "
        f"`medsafety show {run_id[:12]}` lists the jury again"
    )


def _sweep(
    out: Console,
    err: Console,
    store: Store,
    project: Path,
    base_spec: str,
    release: Path,
    judge: str,
    medqa_dir: Path | None,
    max_new_tokens: int,
    sample: int,
):  # noqa: ANN202 - SweepResult
    from .finetune.sweep import SweepPlan, run_sweep
    from .finetune.tables import sweep_table

    plan = SweepPlan(
        base=base_spec,
        kinds=("med",),
        ns=(DEMO_N,),
        judge=judge,
        settings=demo_lora(),
        max_new_tokens=max_new_tokens,
        batch_size=16,
        data_dir=str(release),
        benign_file=str(benign_sample_path()),
        benign_limit=30,
        sample=sample,
        sample_seed=0,
        medqa_dir=str(medqa_dir) if medqa_dir else None,
        medqa_tasks=("medqa",) if medqa_dir else None,
        medqa_limit=DEMO_MEDQA_LIMIT,
    )
    with RichProgress(err) as progress:
        result = run_sweep(store, plan, project, progress=progress, log=lambda s: err.print(escape(s)))
    out.print(sweep_table(result, out.width))
    return result


def _paired(out: Console, store: Store, base_run: str, tuned_run: str) -> None:
    from .report.compare import compare_runs

    c = compare_runs(store, base_run, tuned_run).overall
    p = "-" if c.wilcoxon_p is None else f"{c.wilcoxon_p:.3g}"
    out.print(
        fit_table(
            "sample set, item by item: safety-tuned minus complying base",
            ("items", "base", "tuned", "difference [95% CI]", "Wilcoxon p"),
            [[str(c.n), f"{c.mean_a:.2f}", f"{c.mean_b:.2f}", c.difference.fmt(2), p]],
            out.width,
            right=(0, 1, 2, 3, 4),
        )
    )


def _medqa(out: Console, err: Console, store: Store, base_spec: str, tuned_spec: str, medqa_dir: Path) -> None:
    from .medqa.runner import compare_medqa
    from .medqa.tables import comparison_table

    err.print(f"medical QA (MedQA USMLE, first {DEMO_MEDQA_LIMIT} questions), base and safety-tuned ...")
    with RichProgress(err) as progress:
        c = compare_medqa(store, base_spec, tuned_spec, ["medqa"], medqa_dir, DEMO_MEDQA_LIMIT, progress=progress)
    out.print(comparison_table(c))
