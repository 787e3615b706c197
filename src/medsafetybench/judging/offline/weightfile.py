"""The offline judges' weights files: one safetensors file holding the model's tensors, the fingerprints
of its training rows (`fingerprints.TrainingFingerprints`) and one JSON metadata entry. Writing is
deterministic (sorted tensors, one metadata key), so the same training gives the same bytes and the same
digest, which names the judge's identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError, require
from .fingerprints import TrainingFingerprints

META_KEY = "medsafetybench"


def write_weights(
    path: str | Path, tensors: dict[str, np.ndarray], trained_on: TrainingFingerprints, info: dict[str, Any]
) -> str:
    """Write `tensors`, the fingerprints and `info` to `path`; returns the first 8 hex of its SHA-256."""
    from safetensors.numpy import save as save_bytes

    payload = {k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}
    payload.update(trained_on.tensors())
    # one metadata key: safetensors keeps metadata in a hash map, so several keys come out in any order
    raw = save_bytes(payload, metadata={META_KEY: json.dumps(info, sort_keys=True)})
    Path(path).write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()[:8]


def read_weights(path: Path, what: str, train_hint: str) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """(tensors, info, digest) of a weights file; missing or damaged is a `UserError` naming `what` and the
    file (`train_hint`: how to make one)."""
    require("safetensors", "offline", "The offline judge")
    from safetensors import safe_open
    from safetensors.numpy import load

    try:
        raw = path.read_bytes()
        tensors = load(raw)
        with safe_open(str(path), framework="numpy") as f:
            info = json.loads((f.metadata() or {}).get(META_KEY, "{}"))
    except FileNotFoundError:
        raise UserError(f"{what} weights not found at {path}: {train_hint} or pass an existing weights file") from None
    except Exception as exc:  # safetensors' own error types for a damaged file
        raise UserError(f"{what} weights {path} cannot be read ({exc}): retrain them") from None
    return tensors, info, hashlib.sha256(raw).hexdigest()[:8]
