"""Medical QA accuracy in the HTML report (listed in `report.sections.SECTION_MODULES`).

`report_sections(store, runs)` reads the `medqa_scores` rows of the report's models (matched by the
weights in their identity: an `hf:` run's prompt format and the runner's `|loglik` suffix are ignored)
and returns a "Medical QA accuracy" section: accuracy per task, pooled `mmlu_medical` and macro per
model *and protocol* (each row names its protocol and settings; results of different protocols are
never put side by side as one measure), and, when a model also has a harmfulness score, the figure
`medqa-tradeoff` (one per protocol: `medqa-tradeoff-2`, ... for the second and later). Predictions come
from the stored rows through `results.build_result`, as the runner reads them. A store without the
table (or without rows for these models) gives no sections and is not written to.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluation.pipeline import summarise_run
from ..metrics import Estimate
from ..report.sections import FigureBlock, Paragraph, Section, TableBlock
from ..store import RunInfo, Store
from .results import LOGLIK, MedQAResult
from .scores import result_from_group, stored_rows
from .tasks import PROMPT_VERSION


def weights_key(identity: str) -> str:
    """`identity` without its prompt format and scoring mode: safety runs and medical QA scores of the
    same weights share it (`hf:/m|fmt=chat|w=ab` and `hf:/m|fmt=raw|w=ab|loglik`)."""
    return "|".join(p for p in identity.split("|") if not p.startswith("fmt=") and p != LOGLIK)


def results_for(store: Store, keys: set[str]) -> dict[str, list[MedQAResult]]:
    """Weights key -> the stored results of those weights, one per protocol and settings."""
    out: dict[str, list[MedQAResult]] = {}
    for group, rows in stored_rows(store).items():
        key = weights_key(group[0])
        if key in keys:
            out.setdefault(key, []).append(result_from_group(group, rows))
    return out


def short_name(spec: str, width: int = 30) -> str:
    """`openai:gpt-4o@http://...` -> `gpt-4o`; `hf:/models/llama+/ad/x` -> `llama+x`."""
    name = spec.split(":", 1)[-1].split("@", 1)[0]
    name = "+".join(p.rstrip("/").rsplit("/", 1)[-1] for p in name.split("+"))
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def tradeoff_figure(points: list[tuple[str, float, Estimate]], protocol: str = "harness"):
    """Harmfulness (95% CI) against medical QA macro accuracy under one protocol, one marker per model."""
    from ..report.figures import COLORS, _plt, _short

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for j, (label, acc, h) in enumerate(points):
        yerr = [[h.value - h.low], [h.high - h.value]] if h.low is not None else None
        color = COLORS[j % len(COLORS)]
        ax.errorbar([acc], [h.value], yerr=yerr, fmt="o", color=color, ecolor=color, capsize=3)
        ax.annotate(_short(label), (acc, h.value), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel(f"medical QA accuracy, {protocol} protocol (macro over tasks; higher is better)")
    ax.set_ylabel("harmfulness (mean 1-5, 95% CI; lower is safer)")
    ax.set_ylim(1, 5)
    ax.margins(x=0.15)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def report_sections(store: Store, runs: Sequence[RunInfo]) -> list[Section]:
    """The "Medical QA accuracy" section for the models of `runs`; [] when none has medical QA scores."""
    if not runs or store is None:
        return []
    runs_by_key: dict[str, list[RunInfo]] = {}
    for run in runs:
        runs_by_key.setdefault(weights_key(run.model_identity), []).append(run)
    found = results_for(store, set(runs_by_key))
    if not found:
        return []
    table: list[list] = []
    points: dict[str, list[tuple[str, float, Estimate]]] = {}
    any_generate = False
    for key in (k for k in runs_by_key if k in found):  # report order
        model_runs = runs_by_key[key]
        spec = model_runs[0].model_spec
        for res in sorted(found[key], key=lambda r: (r.protocol, r.label)):
            gen = res.mode != LOGLIK
            any_generate |= gen and res.protocol == "harness"
            for t in [*res.tasks, *res.groups]:
                table.append([spec, res.label, t.name, t.n_scored, t.acc, t.n_invalid if gen else None])
            table.append([spec, res.label, "macro", None, res.macro, None])
            for run in model_runs:
                harm = summarise_run(store, run.id).overall.harmfulness
                if harm.value is not None and res.macro is not None:
                    label = short_name(run.model_spec) + (f" ({run.id[:6]})" if len(model_runs) > 1 else "")
                    points.setdefault(res.label, []).append((label, res.macro, harm))
    text = (
        "Accuracy of the report's models on the medical QA tasks scored by `medsafety medqa` (stored scores), "
        "with 95% bootstrap intervals, per protocol: 'harness' is lm-evaluation-harness zero-shot multiple "
        f"choice (prompt version {PROMPT_VERSION}; log-likelihood for local models), 'paper' the MedSafetyBench "
        "authors' meditron-eval generation protocol (mean over in-context seeds where there are several). "
        "Accuracies of different protocols measure different things and are not comparable. mmlu_medical "
        "pools the MMLU medical subjects and 'macro' averages the tasks outside that group and the pooled group."
    )
    if any_generate:
        text += (
            " Harness generation-mode replies are read here without the option texts (they are not stored): "
            "a reply naming only an option's text, not its letter, counts as invalid (wrong), so these "
            "accuracies can be slightly below those `medsafety medqa` prints; unreadable replies count as wrong."
        )
    blocks: list = [
        Paragraph(text),
        TableBlock(["model", "protocol", "task", "n", "accuracy [95% CI]", "invalid"], table),
    ]
    for i, (label, pts) in enumerate(points.items()):
        name = "medqa-tradeoff" if i == 0 else f"medqa-tradeoff-{i + 1}"
        blocks.append(
            FigureBlock(
                name,
                tradeoff_figure(pts, label),
                f"Harmfulness (95% CI) against medical QA macro accuracy under the {label} "
                "protocol, one marker per model.",
            )
        )
    return [Section("medqa", "Medical QA accuracy", order=60, blocks=blocks)]
