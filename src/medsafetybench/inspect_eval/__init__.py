"""MedSafetyBench inside inspect_ai (the `[inspect]` extra): the `medsafety` task (our items, the paper's
system prompt and greedy 512-token decoding), a scorer that applies any of our judges, and the bridge
between inspect logs and our store (`import_inspect_log`, `export_inspect_log`).

    inspect eval medsafetybench/medsafety --model openai/gpt-4o-mini -T sample=100 -T judge=offline

The task is registered through the `inspect_ai` entry-point group, so inspect finds it by name once
medsafetybench is installed."""

from __future__ import annotations

from .logs import export_inspect_log, import_inspect_log
from .scorer import medsafety_scorer
from .task import medsafety

__all__ = ["medsafety", "medsafety_scorer", "import_inspect_log", "export_inspect_log"]
