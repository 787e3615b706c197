"""Medical QA accuracy in the HTML report (listed in `report.sections.SECTION_MODULES`).

`report_sections(store, runs)` reads the `medqa_scores` rows of the report's models (matched by the
weights in their identity: an `hf:` run's prompt format and the runner's `|loglik` suffix are ignored)
and returns a "Medical QA accuracy" section: accuracy per task, pooled `mmlu_medical` and macro per
model, and, when a model also has a harmfulness score, the figure `medqa-tradeoff`. Predictions come
from the stored rows through the runner's own functions (`loglik.predictions`, `extract.extract_choice`).
A store without the table (or without rows for these models) gives no sections and is not written to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..metrics import Estimate, bootstrap_mean
from ..pipeline import summarise_run
from ..report.sections import FigureBlock, Paragraph, Section, TableBlock
from ..store import RunInfo, Store
from .extract import extract_choice
from .loglik import predictions
from .runner import GENERATE, LOGLIK, MedQAResult, TaskResult
from .tasks import PROMPT_VERSION, TASKS


def weights_key(identity: str) -> str:
    """`identity` without its prompt format and scoring mode: safety runs and medical QA scores of the
    same weights share it (`hf:/m|fmt=chat|w=ab` and `hf:/m|fmt=raw|w=ab|loglik`)."""
    return "|".join(p for p in identity.split("|") if not p.startswith("fmt=") and p != LOGLIK)


def _rows(store: Store, identities: set[str]) -> dict[str, list[tuple]]:
    """Stored rows per weights key, the latest per (task, question): (task, question id, mode, gold, lls, raw)."""
    found = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'medqa_scores'")
    if found.fetchone() is None:
        return {}
    latest: dict[tuple[str, str, str], tuple] = {}
    for ident, task, qid, mode, gold, lls, raw in store.conn.execute(
            "SELECT model_identity, task, question_id, mode, gold, lls, raw FROM medqa_scores "
            "WHERE prompt_version = ? ORDER BY created_at", (PROMPT_VERSION,)):
        key = weights_key(ident)
        if key in identities and task in TASKS:
            latest[(key, task, qid)] = (task, qid, mode, gold, lls, raw)
    out: dict[str, list[tuple]] = {}
    for (key, _, _), row in latest.items():
        out.setdefault(key, []).append(row)
    return out


def result_from_rows(spec: str, identity: str, rows: list[tuple], seed: int = 0) -> MedQAResult:
    """A `MedQAResult` from stored rows, predicting as the runner does. Generation replies are read
    without the option texts (not stored): one naming only an option's text counts as invalid here."""
    per_task: dict[str, tuple[dict[str, bool], list[int]]] = {}
    for task, qid, mode, gold, lls, raw in rows:
        choices = TASKS[task].choices
        if mode == LOGLIK:
            pred: int | None = predictions(choices, json.loads(lls))[0]
        else:
            pred = extract_choice(raw, choices)
        correct, invalid = per_task.setdefault(task, ({}, []))
        correct[qid] = pred == gold
        invalid.append(int(mode != LOGLIK and pred is None))
    result = MedQAResult(spec, identity, LOGLIK if all(r[2] == LOGLIK for r in rows) else GENERATE, [], [])
    groups: dict[str, list[TaskResult]] = {}
    for name in sorted(per_task, key=list(TASKS).index):
        correct, invalid = per_task[name]
        tr = TaskResult(name, TASKS[name].title, len(correct), len(correct), sum(invalid),
                        bootstrap_mean([float(v) for v in correct.values()], seed=seed), None, correct)
        result.tasks.append(tr)
        if TASKS[name].group:
            groups.setdefault(TASKS[name].group, []).append(tr)
    for group, members in groups.items():
        acc = [float(v) for tr in members for v in tr.correct.values()]
        result.groups.append(TaskResult(group, "MMLU medical (pooled)", len(acc), len(acc),
                                        sum(tr.n_invalid for tr in members), bootstrap_mean(acc, seed=seed), None))
    return result


def short_name(spec: str, width: int = 30) -> str:
    """`openai:gpt-4o@http://...` -> `gpt-4o`; `hf:/models/llama+/ad/x` -> `llama+x`."""
    name = spec.split(":", 1)[-1].split("@", 1)[0]
    name = "+".join(p.rstrip("/").rsplit("/", 1)[-1] for p in name.split("+"))
    return name if len(name) <= width else name[:width - 1] + "\u2026"


def tradeoff_figure(points: list[tuple[str, float, Estimate]]):
    """Harmfulness (95% CI) against medical QA macro accuracy, one labelled marker per model."""
    from ..report.figures import COLORS, _plt, _short

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for j, (label, acc, h) in enumerate(points):
        yerr = [[h.value - h.low], [h.high - h.value]] if h.low is not None else None
        color = COLORS[j % len(COLORS)]
        ax.errorbar([acc], [h.value], yerr=yerr, fmt="o", color=color, ecolor=color, capsize=3)
        ax.annotate(_short(label), (acc, h.value), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("medical QA accuracy (macro over tasks; higher is better)")
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
    rows = _rows(store, set(runs_by_key))
    if not rows:
        return []
    table: list[list] = []
    points: list[tuple[str, float, Estimate]] = []
    any_generate = False
    for key in (k for k in runs_by_key if k in rows):  # report order
        model_runs = runs_by_key[key]
        res = result_from_rows(model_runs[0].model_spec, key, rows[key])
        gen = res.mode != LOGLIK
        any_generate |= gen
        for t in [*res.tasks, *res.groups]:
            table.append([model_runs[0].model_spec, t.name, t.n, t.acc, t.n_invalid if gen else None])
        table.append([model_runs[0].model_spec, "macro", None, res.macro, None])
        for run in model_runs:
            harm = summarise_run(store, run.id).overall.harmfulness
            if harm.value is not None and res.macro is not None:
                label = short_name(run.model_spec)
                points.append((label + (f" ({run.id[:6]})" if len(model_runs) > 1 else ""), res.macro, harm))
    text = ("Accuracy of the report's models on the medical QA tasks scored by `medsafety medqa` (stored scores, "
            "prompt version " + PROMPT_VERSION + "), with 95% bootstrap intervals; mmlu_medical pools the MMLU "
            "medical subjects and 'macro' averages the tasks outside that group and the pooled group.")
    if any_generate:
        text += (" Generation-mode replies are read here without the option texts (they are not stored): a reply "
                 "naming only an option's text, not its letter, counts as invalid (wrong), so these accuracies "
                 "can be slightly below those `medsafety medqa` prints; unreadable replies count as wrong.")
    blocks: list = [Paragraph(text), TableBlock(["model", "task", "n", "accuracy [95% CI]", "invalid"], table)]
    if points:
        blocks.append(FigureBlock("medqa-tradeoff", tradeoff_figure(points),
                                  "Harmfulness (95% CI) against medical QA macro accuracy, one marker per model."))
    return [Section("medqa", "Medical QA accuracy", order=60, blocks=blocks)]
