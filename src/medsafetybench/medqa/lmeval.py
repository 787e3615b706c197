"""A bridge to lm-evaluation-harness (EleutherAI, `lm-eval`): run the harness itself on the local copies
of the medical QA files, for the fidelity test and the speed bench.

`write_tasks(root, out_dir, tasks, limit)` converts the released files (the layout `medqa/tasks.py`
reads) into the Hugging Face schema each harness task expects (MedQA -> GBaker/MedQA-USMLE-4-options-hf
`sent1`/`ending0-3`/`label`; MedMCQA -> `cop` 0-3; PubMedQA -> bigbio `QUESTION`/`CONTEXTS`/
`final_decision`; MMLU -> cais/mmlu `question`/`choices`/`answer`) and writes one task YAML per task
that `include`s the harness' *own* task YAML, so the prompts come from the harness' own functions and
templates, and only the dataset is swapped for a local JSON file. `run(model_dir, ...)` evaluates them
with the harness' `hf` model on a local path and returns per-question log-likelihoods and predictions
in our question order. Nothing here is used to score models: it exists to check that we agree.

`lm-eval` is a dev dependency (`pip install lm-eval==0.4.13`), imported only here.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingExtra
from .tasks import LETTERS, MMLU_MEDICAL_SUBJECTS, resolve_tasks, task_files

# our task -> (harness task whose YAML is included, relative path of that YAML in lm_eval/tasks)
HARNESS_TASKS = {
    "medqa": ("medqa_4options", "medqa/medqa.yaml"),
    "medmcqa": ("medmcqa", "medmcqa/medmcqa.yaml"),
    "pubmedqa": ("pubmedqa", "pubmedqa/pubmedqa.yaml"),
    **{f"mmlu_{s}": (f"mmlu_{s}", f"mmlu/default/mmlu_{s}.yaml") for s in MMLU_MEDICAL_SUBJECTS},
}
PREFIX = "msb_"  # our local tasks' names: msb_medqa, msb_mmlu_anatomy, ...


@dataclass(frozen=True)
class HarnessScore:
    """The harness' result for one question: per-choice log-likelihoods and its predictions."""

    lls: tuple[float, ...]
    acc: float
    acc_norm: float | None


def _lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError as exc:
        raise MissingExtra("dev", "lm-eval", "Running lm-evaluation-harness") from exc
    return lm_eval


def _docs(name: str, paths: list[Path]) -> list[dict]:
    """The released rows of one task, in our loader's order, in the harness dataset's schema."""
    if name == "medqa":
        rows = [json.loads(line) for line in paths[0].read_text(encoding="utf-8").splitlines() if line.strip()]
        return [
            {
                "sent1": r["question"],
                **{f"ending{i}": r["options"][k] for i, k in enumerate(LETTERS)},
                "label": LETTERS.index(r["answer_idx"]),
            }
            for r in rows
        ]
    if name == "medmcqa":
        rows = [json.loads(line) for line in paths[0].read_text(encoding="utf-8").splitlines() if line.strip()]
        return [{k: r[k] for k in ("question", "opa", "opb", "opc", "opd")} | {"cop": int(r["cop"]) - 1} for r in rows]
    if name == "pubmedqa":
        pqal = json.loads(paths[0].read_text(encoding="utf-8"))
        truth = json.loads(paths[1].read_text(encoding="utf-8"))
        return [
            {"QUESTION": pqal[p]["QUESTION"], "CONTEXTS": pqal[p]["CONTEXTS"], "final_decision": a}
            for p, a in truth.items()
        ]
    with paths[0].open(encoding="utf-8", newline="") as fh:
        return [
            {"question": r[0], "choices": r[1:5], "answer": LETTERS.index(r[5].strip())} for r in csv.reader(fh) if r
        ]


def write_tasks(
    root: Path,
    out_dir: Path,
    tasks: list[str] | None = None,
    limit: int | None = None,
    acc_norm_everywhere: bool = False,
) -> dict[str, str]:
    """Write local harness tasks for `tasks` (our names or groups) under `out_dir`; return our task name ->
    local harness task name. `acc_norm_everywhere` adds acc_norm to tasks whose harness YAML lists only acc
    (pubmedqa, mmlu), to check our acc_norm against the harness' own computation."""
    lm_eval = _lm_eval()
    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for task in resolve_tasks(tasks):
        docs = _docs(task.name, task_files(task, root))[:limit] if limit else _docs(task.name, task_files(task, root))
        data = out_dir / f"{task.name}.jsonl"
        data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
        _, yaml_rel = HARNESS_TASKS[task.name]
        local = PREFIX + task.name
        lines = [
            f"include: {tasks_dir / yaml_rel}",
            f"task: {local}",
            "tag: []",
            "dataset_path: json",
            "dataset_name: null",
            f"dataset_kwargs:\n  data_files:\n    test: {data}",
            "test_split: test",
            "training_split: null",
            "validation_split: null",
            "fewshot_split: null",
            "num_fewshot: 0",
        ]
        if acc_norm_everywhere:
            lines.append(
                "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
                "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true"
            )
        (out_dir / f"{local}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        names[task.name] = local
    return names


def run(
    model_dir: str | Path,
    root: Path,
    work_dir: Path,
    tasks: list[str] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    add_bos: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    acc_norm_everywhere: bool = False,
) -> dict[str, list[HarnessScore]]:
    """Evaluate `model_dir` with lm-eval's `hf` model on the local tasks; our task name -> per-question
    scores in our question order. `add_bos=True` is the harness default (the tokenizer's own special
    tokens: BOS for Llama tokenizers); False passes `add_bos_token=False`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    lm_eval = _lm_eval()
    from lm_eval.tasks import TaskManager

    names = write_tasks(root, work_dir, tasks, limit, acc_norm_everywhere)
    model_args = f"pretrained={model_dir},dtype={dtype}" + ("" if add_bos else ",add_bos_token=False")
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=list(names.values()),
        task_manager=TaskManager(include_path=str(work_dir), include_defaults=False),
        batch_size=batch_size,
        device=device,
        log_samples=True,
        bootstrap_iters=0,
    )
    result = {}
    for ours, local in names.items():
        samples = sorted(out["samples"][local], key=lambda s: s["doc_id"])
        result[ours] = [
            HarnessScore(
                tuple(float(r[0]) for r in s["filtered_resps"]),
                float(s["acc"]),
                float(s["acc_norm"]) if "acc_norm" in s else None,
            )
            for s in samples
        ]
    return result
