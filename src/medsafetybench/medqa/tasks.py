"""Medical QA tasks declared as data: each `Task` names its loader, prompt format, choices and metric,
and the loaders read the released files exactly as they are published.

Default prompts reproduce lm-evaluation-harness (EleutherAI) so a model scored here and there gets the
same accuracy; every continuation is `TARGET_DELIMITER + choice`, i.e. " A", " yes":

* ``medqa`` = harness ``medqa_4options`` (lm_eval/tasks/medqa/medqa.yaml, preprocess_medqa.doc_to_text):
  ``"Question: {question}\\nA. {A}\\nB. {B}\\nC. {C}\\nD. {D}\\nAnswer:"``, choices A-D.
* ``medmcqa`` = harness ``medmcqa`` (lm_eval/tasks/medmcqa/medmcqa.yaml, utils_medmcqa.doc_to_text):
  ``"Question: {question}\\nChoices:\\nA. {opa}\\nB. {opb}\\nC. {opc}\\nD. {opd}\\nAnswer:"``, choices A-D.
* ``pubmedqa`` = harness ``pubmedqa`` (lm_eval/tasks/pubmedqa/pubmedqa.yaml, preprocess_pubmedqa):
  ``"Abstract: {contexts joined by \\n}\\nQuestion: {question}\\nAnswer:"``, choices yes/no/maybe.
* ``mmlu_<subject>`` = harness ``mmlu_<subject>`` (lm_eval/tasks/mmlu/default/_default_template_yaml and
  mmlu_<subject>.yaml): the description ``"The following are multiple choice questions (with answers)
  about {subject with spaces}.\\n\\n"`` then ``"{question.strip()}\\nA. {A}\\nB. {B}\\nC. {C}\\nD. {D}\\nAnswer:"``.

Files (under `--data DIR` or $MEDSAFETYBENCH_MEDQA_DATA, in the layout of the public releases):
MedQA USMLE 4-option test jsonl (1,273), MedMCQA dev json lines with `cop` 1-4 (4,183), PubMedQA
`ori_pqal.json` + `test_ground_truth.json` (the official 500 test PMIDs), MMLU headerless test CSVs
per subject (6 medical subjects, 1,089). A malformed row is a `UserError` naming the file and line.
`Task.metrics` lists what the harness task's `metric_list` reports (acc and acc_norm for medqa and
medmcqa, acc only for pubmedqa and mmlu); `Question.meta` keeps the released fields the paper protocol's
prompts need (question, options, answer, contexts, explanation). `PROMPT_VERSION` is part of every
stored harness score's key: change a template, bump it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

PROMPT_VERSION = "lmeval-v1"
TARGET_DELIMITER = " "
DATA_ENV = "MEDSAFETYBENCH_MEDQA_DATA"
LETTERS = ("A", "B", "C", "D")
MMLU_MEDICAL_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)


@dataclass(frozen=True)
class Question:
    """One multiple-choice question, as the task's prompt format will show it."""

    id: str
    prompt: str  # the context, ending in "Answer:" (no trailing space)
    choices: tuple[str, ...]  # continuation strings without the delimiter ("A", "yes")
    gold: int  # index into choices
    options: tuple[str, ...] = ()  # option texts (for answer extraction in generation mode)
    meta: dict = field(default_factory=dict)  # the released fields other prompt formats need (question, ...)


@dataclass(frozen=True)
class Task:
    """A task as data: name, files, loader (rows -> Questions), choices and metric."""

    name: str
    title: str
    files: tuple[str, ...]  # paths relative to the data dir (released layout)
    loader: Callable[[list[Path]], list[Question]]
    choices: tuple[str, ...] = LETTERS
    metrics: tuple[str, ...] = ("acc",)  # what the harness task's metric_list reports
    group: str | None = None  # e.g. "mmlu_medical" for the MMLU subjects
    expected: int | None = None  # question count of the released file (informational)


# --- prompt formats (lm-evaluation-harness strings, see module docstring) ---------------------------


def medqa_prompt(question: str, options: tuple[str, ...]) -> str:
    return f"Question: {question}\n" + "".join(f"{k}. {v}\n" for k, v in zip(LETTERS, options, strict=True)) + "Answer:"


def medmcqa_prompt(question: str, options: tuple[str, ...]) -> str:
    return (
        f"Question: {question}\nChoices:\n"
        + "".join(f"{k}. {v}\n" for k, v in zip(LETTERS, options, strict=True))
        + "Answer:"
    )


def pubmedqa_prompt(contexts: list[str], question: str) -> str:
    return "Abstract: {}\nQuestion: {}\nAnswer:".format("\n".join(contexts), question)


def mmlu_prompt(subject: str, question: str, options: tuple[str, ...]) -> str:
    description = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    return (
        description
        + question.strip()
        + "\n"
        + "".join(f"{k}. {v}\n" for k, v in zip(LETTERS, options, strict=True))
        + "Answer:"
    )


# --- loaders ------------------------------------------------------------------------------------------


def _bad(path: Path, line: int, what: str) -> UserError:
    return UserError(f"{path}:{line}: {what}; fix or remove that row (see docs/medqa.md for the format)")


def _json_lines(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad(path, n, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise _bad(path, n, "expected a JSON object")
            rows.append((n, obj))
    return rows


def _text(obj: dict, key: str, path: Path, n: int) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _bad(path, n, f"field '{key}' is missing or not a non-empty string")
    return v


def load_medqa(paths: list[Path]) -> list[Question]:
    """MedQA USMLE 4-option jsonl: question, options {A..D}, answer_idx A-D. Id = line number."""
    (path,) = paths
    out = []
    for n, obj in _json_lines(path):
        q = _text(obj, "question", path, n)
        opts = obj.get("options")
        if (
            not isinstance(opts, dict)
            or sorted(opts) != list(LETTERS)
            or not all(isinstance(v, str) for v in opts.values())
        ):
            raise _bad(path, n, "field 'options' must be an object with string options A, B, C, D")
        gold = obj.get("answer_idx")
        if gold not in LETTERS:
            raise _bad(path, n, f"field 'answer_idx' must be one of A-D (got {gold!r})")
        options = tuple(opts[k] for k in LETTERS)
        out.append(
            Question(
                f"L{n}",
                medqa_prompt(q, options),
                LETTERS,
                LETTERS.index(gold),
                options,
                {"question": q, "options": dict(opts), "answer": obj.get("answer")},
            )
        )
    return out


def load_medmcqa(paths: list[Path]) -> list[Question]:
    """MedMCQA dev json lines: question, opa..opd, cop 1-4 (the released numbering), id."""
    (path,) = paths
    out = []
    for n, obj in _json_lines(path):
        q = _text(obj, "question", path, n)
        options = []
        for k in ("opa", "opb", "opc", "opd"):
            v = obj.get(k)
            if not isinstance(v, str):
                raise _bad(path, n, f"field '{k}' is missing or not a string")
            options.append(v)
        cop = obj.get("cop")
        if isinstance(cop, bool) or not isinstance(cop, int) or not 1 <= cop <= 4:
            raise _bad(path, n, f"field 'cop' must be an integer 1-4 (got {cop!r})")
        qid = str(obj.get("id") or f"L{n}")
        out.append(
            Question(
                qid,
                medmcqa_prompt(q, tuple(options)),
                LETTERS,
                cop - 1,
                tuple(options),
                {"subject": obj.get("subject_name"), "question": q, "exp": obj.get("exp")},
            )
        )
    return out


PUBMEDQA_CHOICES = ("yes", "no", "maybe")


def load_pubmedqa(paths: list[Path]) -> list[Question]:
    """PubMedQA PQA-L: `ori_pqal.json` (PMID -> QUESTION, CONTEXTS, final_decision) restricted to the
    official test PMIDs of `test_ground_truth.json` (PMID -> yes/no/maybe), in that file's order."""
    pqal_path, truth_path = paths
    data = {}
    for p in (pqal_path, truth_path):
        try:
            data[p] = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data[p], dict):
            raise UserError(f"{p}: expected a JSON object keyed by PMID")
    pqal, truth = data[pqal_path], data[truth_path]
    truth_lines = {
        m.group(1): n
        for n, line in enumerate(truth_path.read_text(encoding="utf-8").splitlines(), 1)
        if (m := re.match(r'\s*"([^"]+)"\s*:', line))
    }
    out = []
    for pmid, answer in truth.items():
        line = truth_lines.get(pmid, 0)
        if answer not in PUBMEDQA_CHOICES:
            raise UserError(f"{truth_path}:{line}: PMID {pmid} has answer {answer!r}; expected yes, no or maybe")
        rec = pqal.get(pmid)
        if not isinstance(rec, dict):
            raise UserError(
                f"{truth_path}:{line}: PMID {pmid} is not in {pqal_path.name}; use the matching release files"
            )
        q, ctx = rec.get("QUESTION"), rec.get("CONTEXTS")
        if not isinstance(q, str) or not isinstance(ctx, list) or not all(isinstance(c, str) for c in ctx):
            raise UserError(f"{pqal_path}: PMID {pmid} needs a string QUESTION and a list of string CONTEXTS")
        out.append(
            Question(
                pmid,
                pubmedqa_prompt(ctx, q),
                PUBMEDQA_CHOICES,
                PUBMEDQA_CHOICES.index(answer),
                PUBMEDQA_CHOICES,
                {"question": q, "contexts": list(ctx), "long_answer": rec.get("LONG_ANSWER")},
            )
        )
    return out


def mmlu_loader(subject: str) -> Callable[[list[Path]], list[Question]]:
    """Headerless MMLU CSV: question, A, B, C, D, answer letter. Id = row number."""

    def load(paths: list[Path]) -> list[Question]:
        (path,) = paths
        out = []
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            try:
                for i, row in enumerate(reader, 1):
                    if not row:
                        continue
                    if len(row) != 6:
                        raise _bad(
                            path, reader.line_num, f"expected 6 columns (question, A, B, C, D, answer), got {len(row)}"
                        )
                    if row[5].strip() not in LETTERS:
                        raise _bad(path, reader.line_num, f"answer column must be A-D (got {row[5]!r})")
                    options = tuple(row[1:5])
                    out.append(
                        Question(
                            f"{subject}:{i}",
                            mmlu_prompt(subject, row[0], options),
                            LETTERS,
                            LETTERS.index(row[5].strip()),
                            options,
                            {"subject": subject, "question": row[0]},
                        )
                    )
            except csv.Error as exc:
                raise _bad(path, reader.line_num, f"unreadable CSV ({exc})") from None
        return out

    return load


MMLU_COUNTS = {
    "anatomy": 135,
    "clinical_knowledge": 265,
    "college_biology": 144,
    "college_medicine": 173,
    "medical_genetics": 100,
    "professional_medicine": 272,
}

TASKS: dict[str, Task] = {
    "medqa": Task(
        "medqa",
        "MedQA (USMLE, 4 options)",
        ("medqa_usmle_4opt_test/phrases_no_exclude_test.jsonl",),
        load_medqa,
        metrics=("acc", "acc_norm"),
        expected=1273,
    ),
    "medmcqa": Task(
        "medmcqa", "MedMCQA (dev)", ("medmcqa_dev/dev.json",), load_medmcqa, metrics=("acc", "acc_norm"), expected=4183
    ),
    "pubmedqa": Task(
        "pubmedqa",
        "PubMedQA (PQA-L test)",
        ("pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"),
        load_pubmedqa,
        choices=PUBMEDQA_CHOICES,
        expected=500,
    ),
    **{
        f"mmlu_{s}": Task(
            f"mmlu_{s}",
            f"MMLU {s.replace('_', ' ')}",
            (f"mmlu_medical/{s}_test.csv",),
            mmlu_loader(s),
            group="mmlu_medical",
            expected=MMLU_COUNTS[s],
        )
        for s in MMLU_MEDICAL_SUBJECTS
    },
}
GROUPS = {"mmlu_medical": tuple(f"mmlu_{s}" for s in MMLU_MEDICAL_SUBJECTS)}
DEFAULT_TASKS = ("medqa", "medmcqa", "pubmedqa", "mmlu_medical")


def resolve_tasks(names: list[str] | tuple[str, ...] | None) -> list[Task]:
    """Task names or group names (mmlu_medical) -> Tasks, in order, without duplicates."""
    out: list[Task] = []
    for name in names or DEFAULT_TASKS:
        key = name.strip().lower()
        subtasks = GROUPS.get(key, (key,))
        for t in subtasks:
            if t not in TASKS:
                known = ", ".join([*TASKS, *GROUPS])
                raise UserError(f"unknown medical QA task '{name}': use one of {known}")
            if TASKS[t] not in out:
                out.append(TASKS[t])
    return out


def data_root(data_dir: str | Path | None) -> Path:
    root = data_dir or os.environ.get(DATA_ENV)
    if not root:
        raise UserError(
            f"medical QA needs local copies of the released files: pass --data DIR (or set {DATA_ENV}); "
            "see docs/medqa.md for the layout and where to get each set"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise UserError(f"medical QA data directory '{path}' does not exist: pass --data DIR with the released files")
    return path


def task_files(task: Task, root: Path) -> list[Path]:
    """The task's files under `root`, in the released layout or flat (file names only)."""
    found = []
    for rel in task.files:
        for cand in (root / rel, root / Path(rel).name):
            if cand.is_file():
                found.append(cand)
                break
        else:
            raise UserError(
                f"task {task.name}: '{rel}' not found under {root} (nor {Path(rel).name} directly there); "
                "download the released file (see docs/medqa.md) or drop the task with --tasks"
            )
    return found


def load_task(task: Task, data_dir: str | Path | None, limit: int | None = None) -> list[Question]:
    questions = task.loader(task_files(task, data_root(data_dir)))
    return questions[:limit] if limit else questions
