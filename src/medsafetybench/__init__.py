"""medsafetybench: measure and improve the medical safety of large language models.

The loop: benchmark items (`medsafetybench.data`) -> model responses (`medsafetybench.models`) ->
judgements (`medsafetybench.judging`) -> summaries (`medsafetybench.metrics`), all kept in the run
store (`medsafetybench.store`) and driven by `medsafetybench.evaluation.pipeline` and the `medsafety` CLI.

    from medsafetybench import evaluate, ItemSelection
    result = evaluate("openai:gpt-4o-mini", judges="openai:gpt-3.5-turbo-0125", items=ItemSelection("eval", sample=100))
    print(result.results[0].outcome.summary.overall.harmfulness)
"""

from ._lazy import lazy_exports as _lazy_exports
from ._version import __version__

# The public API, loaded on first use (see _lazy.py): `import medsafetybench` stays light, and `dir()`
# and `__all__` list every name.
_EXPORTS = {
    "evaluate": ".api",
    "run_study_file": ".api",
    "ItemSelection": ".evaluation.tasks",
    "EvalSettings": ".evaluation.pipeline",
    "load_study": ".study.spec",
    "Study": ".study.spec",
    "StudyOutcome": ".study.runner",
    "load_items": ".data",
    "Item": ".data.schema",
    "load_model": ".models",
    "parse_spec": ".models",
    "load_judge": ".judging",
    "Store": ".store",
    "summarise_run": ".evaluation.pipeline",
    "UserError": ".errors",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
