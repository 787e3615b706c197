"""Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical): does safety tuning cost competence?

Tasks are data (`tasks.py`); two protocols (`protocols.py`): the lm-evaluation-harness one (local models
by log-likelihood, `loglik.py`; chat APIs by generation and `extract.py`) and the paper's meditron-eval
one (`paper.py`). `runner.py` keeps every score in the store (`scores.py`), `results.py` turns stored
rows into accuracies, `compare.py` runs paired McNemar tests, `report.py` is the HTML report section,
`cli.py` is `medsafety medqa`, and `lmeval.py` runs lm-evaluation-harness itself for the fidelity checks.
"""

from .compare import MedQAComparison, compare_results, mcnemar
from .extract import extract_choice
from .protocols import HarnessProtocol, PaperProtocol, make_protocol
from .results import MedQAResult, TaskResult
from .runner import compare_medqa, evaluate_medqa
from .scores import MedQARun, export_records, medqa_runs
from .tasks import DEFAULT_TASKS, GROUPS, PROMPT_VERSION, TASKS, Question, Task, load_task, resolve_tasks

__all__ = ["DEFAULT_TASKS", "GROUPS", "PROMPT_VERSION", "TASKS", "HarnessProtocol", "MedQAComparison", "MedQAResult",
           "MedQARun", "PaperProtocol", "Question", "Task", "TaskResult", "compare_medqa", "compare_results",
           "evaluate_medqa", "export_records", "extract_choice", "load_task", "make_protocol", "mcnemar",
           "medqa_runs", "resolve_tasks"]
