"""Running medical QA evaluations: score each question once, keep every score in the store, and turn
the stored scores into accuracies, intervals and paired comparisons.

Table `medqa_scores` (in the project's SQLite store) holds one row per (model identity, task, question
id, prompt version, scoring mode, prompt content): the per-choice log-likelihoods (`hf:` models) or the
raw reply (`openai:` models). Predictions are derived from those rows when results are read, so a
re-run computes only the missing questions, an interrupted run resumes, and an improved answer
extractor re-reads stored replies without new calls. Invalid (unreadable) replies count as wrong and
are reported; failed API calls are not stored and are retried by the next run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError, require
from ..metrics import Estimate, bootstrap_mean
from ..models.base import ChatRequest, Completion, GenerationConfig
from ..models.spec import ModelSpec, load_model, parse_spec
from ..store import Store
from .extract import GEN_MAX_TOKENS, extract_choice, generation_prompt
from .loglik import LogLikScorer, predictions
from .tasks import PROMPT_VERSION, Question, Task, load_task, resolve_tasks

LOGLIK, GENERATE = "loglik", "generate"
CHUNK = 64


class Progress:  # the pipeline's protocol: start(stage, total) / advance(stage, n)
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, n: int = 1) -> None: ...


@dataclass
class TaskResult:
    name: str
    title: str
    n: int  # questions in the task (after --limit)
    n_scored: int  # questions with a stored score
    n_invalid: int  # generation mode: replies with no readable answer (counted wrong)
    acc: Estimate
    acc_norm: Estimate | None  # log-likelihood mode only
    correct: dict[str, bool] = field(default_factory=dict, repr=False)  # question id -> right (acc)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "title", "n", "n_scored", "n_invalid")}
        d["acc"] = vars(self.acc).copy() if self.acc else None
        d["acc_norm"] = vars(self.acc_norm).copy() if self.acc_norm else None
        return d


@dataclass
class MedQAResult:
    model_spec: str
    model_identity: str
    mode: str
    tasks: list[TaskResult]  # one per task (MMLU per subject)
    groups: list[TaskResult]  # pooled groups (mmlu_medical)
    computed: int = 0  # questions scored by this call (the rest came from the store)
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def headline(self) -> list[TaskResult]:
        """The units of the macro average: tasks outside a group, and each group pooled."""
        from .tasks import TASKS

        return [t for t in self.tasks if not (t.name in TASKS and TASKS[t.name].group)] + self.groups

    @property
    def macro(self) -> float | None:
        vals = [t.acc.value for t in self.headline if t.acc.value is not None]
        return sum(vals) / len(vals) if vals else None

    def accuracy(self) -> dict[str, float | None]:
        """Task (and group) name -> accuracy: what the fine-tuning sweep records per point."""
        return {t.name: t.acc.value for t in [*self.tasks, *self.groups]}

    def to_dict(self) -> dict:
        return {"model": self.model_spec, "model_identity": self.model_identity, "mode": self.mode,
                "tasks": [t.to_dict() for t in self.tasks], "groups": [g.to_dict() for g in self.groups],
                "macro_acc": self.macro, "computed": self.computed, "failed": self.failed}


def ensure_schema(store: Store) -> None:
    """Kept for callers: the tables are created and migrated when the store opens (`migrations`)."""


def score_key(identity: str, task: str, q: Question, mode: str) -> str:
    payload = json.dumps([identity, task, q.id, PROMPT_VERSION, mode, q.prompt, list(q.choices)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _open_model(spec: ModelSpec, batch_size: int, options: dict[str, Any]) -> tuple[Any, str, str]:
    """(model object, identity, mode) without loading weights (hf: loads lazily when needed)."""
    if spec.backend == "hf":
        from ..models.hf_backend import HFChatModel

        m = HFChatModel(spec.name, spec.adapter, prompt_format="raw", batch_size=batch_size,
                        device=options.get("device"), dtype=options.get("dtype"))
        return m, f"{m.identity}|loglik", LOGLIK
    if spec.backend == "openai":
        m = load_model(spec, **{k: options[k] for k in ("concurrency", "timeout", "api_key") if options.get(k) is not None})
        return m, m.identity, GENERATE
    raise UserError(f"medical QA scores local models by log-likelihood (hf:) or chat APIs by generation (openai:); "
                    f"'{spec}' is {spec.backend}: use hf: with the same weights")


def evaluate_medqa(store: Store, model_spec: str, tasks: Sequence[str] | None = None, data_dir: Any = None,
                   limit: int | None = None, batch_size: int = 8, progress: Any = None, *, shots: int = 0,
                   model: Any = None, seed: int = 0, **options: Any) -> MedQAResult:
    """Score `model_spec` on the medical QA tasks (default: medqa, medmcqa, pubmedqa, mmlu_medical),
    computing only what the store lacks, and return per-task accuracies. `model` may be a ready
    `HFChatModel` / `ChatModel` for that spec (its identity is used); `options` go to the backend
    (concurrency, timeout, device, dtype)."""
    if shots != 0:
        raise UserError("--shots: only 0-shot is supported (the released test files carry no few-shot exemplars)")
    spec = parse_spec(model_spec)
    task_list = resolve_tasks(list(tasks) if tasks else None)
    questions = {t.name: load_task(t, data_dir, limit) for t in task_list}
    if model is None:
        model, identity, mode = _open_model(spec, batch_size, options)
    else:
        mode = LOGLIK if spec.backend == "hf" else GENERATE
        identity = model.identity + ("|loglik" if mode == LOGLIK else "")
    ensure_schema(store)
    progress = progress or Progress()
    result = MedQAResult(str(spec), identity, mode, [], [])
    for task in task_list:
        qs = questions[task.name]
        keys = [score_key(identity, task.name, q, mode) for q in qs]
        have = _existing(store, keys)
        todo = [(q, k) for q, k in zip(qs, keys, strict=True) if k not in have]
        stage = f"medqa {task.name}"
        progress.start(stage, len(todo))
        if todo and mode == LOGLIK:
            _run_loglik(store, model, identity, task, todo, batch_size, progress, stage, options)
        elif todo:
            _run_generate(store, model, identity, task, todo, progress, stage, result)
        result.computed += len(todo)
    result.computed -= result.failed
    _summarise(store, result, task_list, questions, identity, mode, seed)
    return result


def _existing(store: Store, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for s in range(0, len(keys), 500):
        chunk = keys[s:s + 500]
        rows = store.conn.execute(f"SELECT key FROM medqa_scores WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        found.update(r[0] for r in rows)
    return found


def _put(store: Store, rows: list[tuple]) -> None:
    with store.transaction() as c:
        c.executemany("INSERT OR IGNORE INTO medqa_scores VALUES (?,?,?,?,?,?,?,?,?,?)", rows)


def _run_loglik(store: Store, model: Any, identity: str, task: Task, todo: list, batch_size: int,
                progress: Any, stage: str, options: dict) -> None:
    remote = getattr(model, "loglik_scorer", None)  # e.g. a Ray replica's (models.ray_engine.RemoteLogLik)
    if remote is not None:
        scorer = remote(batch_size=batch_size, add_bos=bool(options.get("add_bos")))
    else:
        if getattr(model, "model", None) is None:
            model.load()
        scorer = LogLikScorer(model.model, model.tokenizer, batch_size=batch_size, add_bos=bool(options.get("add_bos")))
    step = max(CHUNK, batch_size)
    for s in range(0, len(todo), step):  # store each chunk as it finishes: a killed run keeps it
        chunk = todo[s:s + step]
        lls = scorer.score([(q.prompt, q.choices) for q, _ in chunk])
        now = time.time()
        _put(store, [(k, identity, task.name, q.id, PROMPT_VERSION, LOGLIK, q.gold, json.dumps(v), None, now)
                     for (q, k), v in zip(chunk, lls, strict=True)])
        progress.advance(stage, len(chunk))


def _run_generate(store: Store, model: Any, identity: str, task: Task, todo: list, progress: Any, stage: str,
                  result: MedQAResult) -> None:
    config = GenerationConfig(max_new_tokens=GEN_MAX_TOKENS)
    requests = [ChatRequest.simple(generation_prompt(q.prompt, q.choices), config=config) for q, _ in todo]

    def on_result(i: int, completion: Completion) -> None:
        q, k = todo[i]
        if completion.ok:
            _put(store, [(k, identity, task.name, q.id, PROMPT_VERSION, GENERATE, q.gold, None, completion.text, time.time())])
        else:
            result.failed += 1
            result.errors.append(f"{task.name} {q.id}: {completion.error}")
        progress.advance(stage, 1)

    asyncio.run(model.generate(requests, on_result=on_result))


def _summarise(store: Store, result: MedQAResult, task_list: list[Task], questions: dict[str, list[Question]],
               identity: str, mode: str, seed: int) -> None:
    pooled: dict[str, list[tuple[Task, TaskResult, list[float]]]] = {}
    for task in task_list:
        qs = questions[task.name]
        keys = {score_key(identity, task.name, q, mode): q for q in qs}
        rows = {}
        for s in range(0, len(qs), 500):
            chunk = list(keys)[s:s + 500]
            rows.update({r[0]: r[1:] for r in store.conn.execute(
                f"SELECT key, lls, raw FROM medqa_scores WHERE key IN ({','.join('?' * len(chunk))})", chunk)})
        correct: dict[str, bool] = {}
        norm: list[float] = []
        invalid = 0
        for k, q in keys.items():
            if k not in rows:
                continue
            lls, raw = rows[k]
            if mode == LOGLIK:
                pred, pred_norm = predictions(q.choices, json.loads(lls))
                norm.append(float(pred_norm == q.gold))
            else:
                pred = extract_choice(raw, q.choices, q.options)
                invalid += pred is None
            correct[q.id] = pred == q.gold
        acc = [float(v) for v in correct.values()]
        tr = TaskResult(task.name, task.title, len(qs), len(correct), invalid, bootstrap_mean(acc, seed=seed),
                        bootstrap_mean(norm, seed=seed) if mode == LOGLIK else None, correct)
        result.tasks.append(tr)
        if task.group:
            pooled.setdefault(task.group, []).append((task, tr, norm))
    for group, members in pooled.items():
        acc = [float(v) for _, tr, _ in members for v in tr.correct.values()]
        norm = [v for _, _, n in members for v in n]
        correct = {f"{t.name}/{qid}": v for t, tr, _ in members for qid, v in tr.correct.items()}
        result.groups.append(TaskResult(group, "MMLU medical (pooled)", sum(tr.n for _, tr, _ in members),
                                        len(acc), sum(tr.n_invalid for _, tr, _ in members),
                                        bootstrap_mean(acc, seed=seed),
                                        bootstrap_mean(norm, seed=seed) if mode == LOGLIK else None, correct))


# --- paired comparison ------------------------------------------------------------------------------------

def mcnemar(b: int, c: int) -> float:
    """Two-sided McNemar p-value from the discordant counts b (A right, B wrong) and c (A wrong, B right):
    exact binomial for b + c <= 25, else chi-square with continuity correction (scipy)."""
    n = b + c
    if n == 0:
        return 1.0
    if n <= 25:
        tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
        return min(1.0, 2 * tail)
    stats = require("scipy.stats", "stats", "The McNemar test")
    return float(stats.chi2.sf((abs(b - c) - 1) ** 2 / n, 1))


@dataclass
class PairedTask:
    name: str
    n: int  # questions scored for both models
    acc_a: float | None
    acc_b: float | None
    a_only: int  # right for A only
    b_only: int  # right for B only
    p_value: float

    def to_dict(self) -> dict:
        return dict(vars(self))


@dataclass
class MedQAComparison:
    a: MedQAResult
    b: MedQAResult
    tasks: list[PairedTask]

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "paired": [t.to_dict() for t in self.tasks]}


def compare_results(a: MedQAResult, b: MedQAResult) -> MedQAComparison:
    rb = {t.name: t for t in [*b.tasks, *b.groups]}
    out = []
    for ta in [*a.tasks, *a.groups]:
        tb = rb.get(ta.name)
        if tb is None:
            continue
        shared = sorted(set(ta.correct) & set(tb.correct))
        x = [ta.correct[q] for q in shared]
        y = [tb.correct[q] for q in shared]
        a_only = sum(1 for u, v in zip(x, y, strict=True) if u and not v)
        b_only = sum(1 for u, v in zip(x, y, strict=True) if v and not u)
        n = len(shared)
        out.append(PairedTask(ta.name, n, sum(x) / n if n else None, sum(y) / n if n else None, a_only, b_only,
                              mcnemar(a_only, b_only)))
    return MedQAComparison(a, b, out)


def compare_medqa(store: Store, spec_a: str, spec_b: str, tasks: Sequence[str] | None = None, data_dir: Any = None,
                  limit: int | None = None, batch_size: int = 8, progress: Any = None, **options: Any) -> MedQAComparison:
    """Evaluate both models (cached where already done) and test each task with McNemar on shared questions."""
    a = evaluate_medqa(store, spec_a, tasks, data_dir, limit, batch_size, progress, **options)
    b = evaluate_medqa(store, spec_b, tasks, data_dir, limit, batch_size, progress, **options)
    return compare_results(a, b)
