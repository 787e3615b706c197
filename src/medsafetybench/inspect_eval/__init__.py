"""MedSafetyBench inside inspect_ai (the `[inspect]` extra): the `medsafety` task (our items, the paper's
system prompt and greedy 512-token decoding), a scorer that applies any of our judges, and the bridge
between inspect logs and our store (`import_inspect_log`, `export_inspect_log`).

    inspect eval medsafetybench/medsafety --model openai/gpt-4o-mini -T sample=100 -T judge=offline

The task is registered through the `inspect_ai` entry-point group, so inspect finds it by name once
medsafetybench is installed."""

from __future__ import annotations

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): `medsafety` registers its `import-inspect` commands from
# `inspect_eval.cli`, and importing this package must not import inspect_ai (about a second)
_EXPORTS = {
    "medsafety": ".task",
    "medsafety_scorer": ".scorer",
    "import_inspect_log": ".logs",
    "export_inspect_log": ".logs",
}

__all__ = ["medsafety", "medsafety_scorer", "import_inspect_log", "export_inspect_log"]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
