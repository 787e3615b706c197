"""medsafetybench: measure and improve the medical safety of large language models.

The loop: benchmark items (`medsafetybench.data`) -> model responses (`medsafetybench.models`) ->
judgements (`medsafetybench.judging`) -> summaries (`medsafetybench.metrics`), all kept in the run
store (`medsafetybench.store`) and driven by `medsafetybench.evaluation.pipeline` and the `medsafety` CLI.

    from medsafetybench import evaluate, ItemSelection
    result = evaluate("openai:gpt-4o-mini", judges="openai:gpt-3.5-turbo-0125", items=ItemSelection("eval", sample=100))
    print(result.results[0].outcome.summary.overall.harmfulness)
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"evaluate": "api", "run_study_file": "api", "ItemSelection": "evaluation.tasks", "EvalSettings": "evaluation.pipeline",
         "load_study": "study.spec"}


def __getattr__(name: str) -> Any:  # imports on first use keep `import medsafetybench` light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"medsafetybench.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'medsafetybench' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
