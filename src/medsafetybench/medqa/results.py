"""Medical QA results: stored per-question rows turned into predictions, accuracies and records.

One function, `build_result`, reads rows of one (model, protocol, settings) the same way for the runner,
the HTML report, `medqa runs` and exports, so every view shows the same figures:

* harness, log-likelihood: `acc` = argmax of the summed log-likelihood, `acc_norm` = argmax per
  character of the choice, shown only for tasks whose harness config reports it (medqa, medmcqa);
* harness, generation: `extract.extract_choice` (with the option texts when the questions are known);
* paper: `paper.read_answer` per generation; with several seeds each seed's accuracy is kept
  (`TaskResult.replicates`) and the task's accuracy is their mean (every seed sees every question);
  a question counts as right for the paired comparison when most seeds got it; self-consistency
  reads the most common answer over the branches (`paper.majority`).

Accuracy intervals are 95% percentile bootstrap over questions.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..metrics import Estimate, bootstrap_mean
from .extract import extract_choice
from .loglik import predictions
from .paper import ANSWER_TYPE, REFERENCE_BENCHMARK, majority, read_answer
from .protocols import HARNESS, Protocol
from .tasks import TASKS, Question

LOGLIK, GENERATE = "loglik", "generate"


@dataclass(frozen=True)
class StoredRow:
    """One row of `medqa_scores` (one question, or one question under one seed/branch)."""

    task: str
    question_id: str
    gold: int
    lls: list[float] | None
    raw: str | None
    replicate: int | None
    mode: str


@dataclass(frozen=True)
class Record:
    """One per-question (per-replicate) result, as exports write it."""

    task: str
    question_id: str
    replicate: int | None
    gold: str
    prediction: str | None
    correct: bool
    valid: bool
    lls: list[float] | None
    prediction_norm: str | None
    raw: str | None


@dataclass
class TaskResult:
    name: str
    title: str
    n: int  # questions in the task (after --limit)
    n_scored: int  # questions with a stored score
    n_invalid: int  # generations with no readable answer (counted wrong)
    acc: Estimate
    acc_norm: Estimate | None  # log-likelihood mode, tasks whose harness config reports acc_norm
    correct: dict[str, bool] = field(default_factory=dict, repr=False)  # question id -> right (acc)
    replicates: dict[str, float] = field(default_factory=dict)  # paper with seeds: "seed 7825" -> accuracy
    scores: list[float] = field(default_factory=list, repr=False)  # per question: 1/0, or the share of seeds right

    def to_dict(self) -> dict:
        d: dict[str, Any] = {k: getattr(self, k) for k in ("name", "title", "n", "n_scored", "n_invalid")}
        d["acc"] = vars(self.acc).copy() if self.acc else None
        d["acc_norm"] = vars(self.acc_norm).copy() if self.acc_norm else None
        if self.replicates:
            d["replicates"] = dict(self.replicates)
        return d


@dataclass
class MedQAResult:
    model_spec: str
    model_identity: str
    mode: str
    tasks: list[TaskResult]  # one per task (MMLU per subject)
    groups: list[TaskResult]  # pooled groups (mmlu_medical)
    protocol: str = HARNESS
    settings: dict = field(default_factory=dict)
    label: str = HARNESS  # the protocol and its settings, for every table and report
    computed: int = 0  # generations / questions scored by this call (the rest came from the store)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    records: list[Record] = field(default_factory=list, repr=False)

    @property
    def headline(self) -> list[TaskResult]:
        """The units of the macro average: tasks outside a group, and each group pooled."""
        return [t for t in self.tasks if not (t.name in TASKS and TASKS[t.name].group)] + self.groups

    @property
    def macro(self) -> float | None:
        vals = [t.acc.value for t in self.headline if t.acc.value is not None]
        return sum(vals) / len(vals) if vals else None

    def accuracy(self) -> dict[str, float | None]:
        """Task (and group) name -> accuracy: what the fine-tuning sweep records per point."""
        return {t.name: t.acc.value for t in [*self.tasks, *self.groups]}

    def to_dict(self) -> dict:
        return {
            "model": self.model_spec,
            "model_identity": self.model_identity,
            "mode": self.mode,
            "protocol": self.protocol,
            "settings": self.settings,
            "label": self.label,
            "tasks": [t.to_dict() for t in self.tasks],
            "groups": [g.to_dict() for g in self.groups],
            "macro_acc": self.macro,
            "computed": self.computed,
            "failed": self.failed,
        }


def _gold_text(task: str, gold: int) -> str:
    return TASKS[task].choices[gold] if task in TASKS else str(gold)


def build_result(
    spec: str,
    identity: str,
    mode: str,
    protocol: Protocol,
    rows: list[StoredRow],
    questions: dict[str, list[Question]] | None = None,
    seed: int = 0,
) -> MedQAResult:
    """A result from stored rows. `questions` (task -> the evaluated questions) fixes the task list, the
    counts and the option texts; without it (report, listing) the tasks and counts are those stored."""
    result = MedQAResult(spec, identity, mode, [], [], protocol.name, protocol.settings(mode), protocol.describe(mode))
    by_task: dict[str, list[StoredRow]] = defaultdict(list)
    for r in rows:
        by_task[r.task].append(r)
    names = (
        list(questions)
        if questions is not None
        else sorted(by_task, key=lambda t: list(TASKS).index(t) if t in TASKS else len(TASKS))
    )
    pooled: dict[str, list[tuple[str, TaskResult, list[float], dict[str, list[float]]]]] = defaultdict(list)
    for name in names:
        qs = {q.id: q for q in questions[name]} if questions is not None else {}
        task_rows = [r for r in by_task.get(name, []) if not qs or r.question_id in qs]
        if qs:  # question order (then replicate order, kept by the paper reader)
            pos = {qid: i for i, qid in enumerate(qs)}
            task_rows.sort(key=lambda r: pos[r.question_id])
        tr, norm, per_rep = _task_result(name, protocol, mode, task_rows, qs, result.records, seed)
        if questions is not None:
            tr.n = len(qs)
        result.tasks.append(tr)
        group = TASKS[name].group if name in TASKS else None
        if group:
            pooled[group].append((name, tr, norm, per_rep))
    for group, members in pooled.items():
        correct = {f"{n}/{q}": v for n, tr, _, _ in members for q, v in tr.correct.items()}
        scores = [s for _, tr, _, _ in members for s in tr.scores]
        norm = [v for _, _, nv, _ in members for v in nv]
        reps: dict[str, list[float]] = defaultdict(list)
        for _, _, _, pr in members:
            for k, v in pr.items():
                reps[k].extend(v)
        tr = TaskResult(
            group,
            "MMLU medical (pooled)",
            sum(m[1].n for m in members),
            len(correct),
            sum(m[1].n_invalid for m in members),
            bootstrap_mean(scores, seed=seed),
            bootstrap_mean(norm, seed=seed) if norm else None,
            correct,
            {k: sum(v) / len(v) for k, v in reps.items() if len(reps) > 1 and v},
            scores,
        )
        result.groups.append(tr)
    return result


def _task_result(
    name: str,
    protocol: Protocol,
    mode: str,
    rows: list[StoredRow],
    qs: dict[str, Question],
    records: list[Record],
    seed: int,
) -> tuple[TaskResult, list[float], dict[str, list[float]]]:
    title = TASKS[name].title if name in TASKS else name
    choices = TASKS[name].choices if name in TASKS else ()
    correct: dict[str, bool] = {}
    scores: list[float] = []  # per question: 1/0, or the share of seeds right
    norm: list[float] = []
    invalid = 0
    per_rep: dict[str, list[float]] = defaultdict(list)
    if protocol.name == HARNESS:
        for r in rows:
            gold = _gold_text(name, r.gold)
            if mode == LOGLIK:
                pred, pred_norm = predictions(choices, r.lls or [])
                if "acc_norm" in TASKS[name].metrics:
                    norm.append(float(pred_norm == r.gold))
                ok, text, valid = pred == r.gold, choices[pred], True
                records.append(Record(name, r.question_id, None, gold, text, ok, True, r.lls, choices[pred_norm], None))
            else:
                q = qs.get(r.question_id)
                pred = extract_choice(r.raw or "", choices, q.options if q else ())
                ok, valid = pred == r.gold, pred is not None
                invalid += not valid
                records.append(
                    Record(
                        name, r.question_id, None, gold, choices[pred] if valid else None, ok, valid, None, None, r.raw
                    )
                )
            correct[r.question_id] = ok
            scores.append(float(ok))
    else:
        benchmark = REFERENCE_BENCHMARK[name]
        kinds = protocol.replicates()  # type: ignore[union-attr]
        order = {value: i for i, (_, value) in enumerate(kinds)}
        by_q: dict[str, list[StoredRow]] = defaultdict(list)
        for r in rows:
            if r.replicate in order:
                by_q[r.question_id].append(r)
        for qid, qrows in by_q.items():
            qrows.sort(key=lambda r: order[r.replicate])
            if len(qrows) < len(kinds):
                continue  # not every seed/branch is stored yet: the question is not scored
            gold = _gold_text(name, qrows[0].gold)
            readings = [read_answer(r.raw or "", gold, ANSWER_TYPE[benchmark]) for r in qrows]
            for r, rd in zip(qrows, readings, strict=True):
                records.append(Record(name, qid, r.replicate, gold, rd.pred, rd.correct, rd.valid, None, None, r.raw))
            if kinds[0][0] == "branch":
                final = majority(readings, gold)
                ok, share = final.correct, float(final.correct)
                invalid += not final.valid
            else:
                for (kind, value), rd in zip(kinds, readings, strict=True):
                    per_rep[f"seed {value}" if kind == "seed" else "single"].append(float(rd.correct))
                share = sum(rd.correct for rd in readings) / len(readings)
                ok = share > 0.5
                invalid += sum(not rd.valid for rd in readings)
            correct[qid] = ok
            scores.append(share)
    tr = TaskResult(
        name,
        title,
        len(qs) or len(correct),
        len(correct),
        invalid,
        bootstrap_mean(scores, seed=seed),
        bootstrap_mean(norm, seed=seed) if norm else None,
        correct,
        {k: sum(v) / len(v) for k, v in per_rep.items() if len(per_rep) > 1 and v},
        scores,
    )
    return tr, norm, per_rep


def parse_lls(text: str | None) -> list[float] | None:
    return json.loads(text) if text else None
