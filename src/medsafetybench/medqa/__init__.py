"""Medical QA accuracy (MedQA, MedMCQA, PubMedQA, MMLU medical): does safety tuning cost competence?

Tasks are data (`tasks.py`); two protocols (`protocols.py`): the lm-evaluation-harness one (local models
by log-likelihood, `loglik.py`; chat APIs by generation and `extract.py`) and the paper's meditron-eval
one (`paper.py`). `runner.py` keeps every score in the store (`scores.py`), `results.py` turns stored
rows into accuracies, `compare.py` runs paired McNemar tests, `report.py` is the HTML report section,
`cli.py` is `medsafety medqa`, and `lmeval.py` runs lm-evaluation-harness itself for the fidelity checks.
"""

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): importing the package stays light
_EXPORTS = {
    "MedQAComparison": ".compare",
    "compare_medqa": ".runner",
    "compare_results": ".compare",
    "mcnemar": ".compare",
    "extract_choice": ".extract",
    "HarnessProtocol": ".protocols",
    "PaperProtocol": ".protocols",
    "make_protocol": ".protocols",
    "MedQAResult": ".results",
    "TaskResult": ".results",
    "evaluate_medqa": ".runner",
    "MedQARun": ".scores",
    "export_records": ".scores",
    "medqa_runs": ".scores",
    "DEFAULT_TASKS": ".tasks",
    "GROUPS": ".tasks",
    "PROMPT_VERSION": ".tasks",
    "TASKS": ".tasks",
    "Question": ".tasks",
    "Task": ".tasks",
    "load_task": ".tasks",
    "resolve_tasks": ".tasks",
}

__all__ = [
    "DEFAULT_TASKS",
    "GROUPS",
    "PROMPT_VERSION",
    "TASKS",
    "HarnessProtocol",
    "MedQAComparison",
    "MedQAResult",
    "MedQARun",
    "PaperProtocol",
    "Question",
    "Task",
    "TaskResult",
    "compare_medqa",
    "compare_results",
    "evaluate_medqa",
    "export_records",
    "extract_choice",
    "load_task",
    "make_protocol",
    "mcnemar",
    "medqa_runs",
    "resolve_tasks",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
