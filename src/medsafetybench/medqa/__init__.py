"""Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical): does safety tuning cost competence?

Tasks are data (`tasks.py`), local models are scored by log-likelihood (`loglik.py`), chat APIs by
generation with answer extraction (`extract.py`); `runner.py` keeps every score in the store and
computes accuracies and paired McNemar comparisons; `cli.py` is `medsafety medqa`.
"""

from .extract import extract_choice
from .runner import (
           MedQAComparison,
           MedQAResult,
           TaskResult,
           compare_medqa,
           compare_results,
           evaluate_medqa,
           mcnemar,
)
from .tasks import DEFAULT_TASKS, GROUPS, PROMPT_VERSION, TASKS, Question, Task, load_task, resolve_tasks

__all__ = ["DEFAULT_TASKS", "GROUPS", "PROMPT_VERSION", "TASKS", "MedQAComparison", "MedQAResult", "Question", "Task",
           "TaskResult", "compare_medqa", "compare_results", "evaluate_medqa", "extract_choice", "load_task", "mcnemar",
           "resolve_tasks"]
