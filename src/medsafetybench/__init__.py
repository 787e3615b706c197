"""medsafetybench: measure and improve the medical safety of large language models.

The loop: benchmark items (`medsafetybench.data`) -> model responses (`medsafetybench.models`) ->
judgements (`medsafetybench.judging`) -> summaries (`medsafetybench.metrics`), all kept in the run
store (`medsafetybench.store`) and driven by `medsafetybench.pipeline` and the `medsafety` CLI.
"""

__version__ = "0.1.0"
