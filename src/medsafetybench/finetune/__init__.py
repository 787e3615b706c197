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

from .data import TrainingData, check_no_eval_overlap, normalise_request, resolve_training_data
from .train import FinetuneResult, LoraSettings, adapter_key, finetune, load_manifest

__all__ = ["TrainingData", "check_no_eval_overlap", "normalise_request", "resolve_training_data",
           "FinetuneResult", "LoraSettings", "adapter_key", "finetune", "load_manifest"]
