"""LoRA safety fine-tuning (the paper's Improve step) and the before/after sweep.

- `data`: which demonstrations to train on (official splits, seeded samples, user files) and the
  guard against training on MedSafety-Eval items;
- `train`: `finetune(base, data, out, LoraSettings(...))` -> adapter folder + manifest;
- `overrefusal`: benign medical questions and the share a model refuses;
- `sweep`: fine-tune and evaluate at several n, compare with the base, store `sweep_points`;
- `cli`: the `medsafety finetune` and `medsafety sweep` commands.

Importing this package does not import torch; `train` imports it when a training starts.
"""

from __future__ import annotations

from .._lazy import lazy_exports as _lazy_exports

# loaded on first use (see _lazy.py): importing the package stays light
_EXPORTS = {
    "TrainingData": ".data",
    "check_no_eval_overlap": ".data",
    "normalise_request": ".data",
    "resolve_training_data": ".data",
    "FinetuneResult": ".train",
    "LoraSettings": ".train",
    "adapter_key": ".train",
    "finetune": ".train",
    "load_manifest": ".train",
}

__all__ = [
    "TrainingData",
    "check_no_eval_overlap",
    "normalise_request",
    "resolve_training_data",
    "FinetuneResult",
    "LoraSettings",
    "adapter_key",
    "finetune",
    "load_manifest",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
