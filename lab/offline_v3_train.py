"""Training the offline judge v3 on a CPU: the feature cache, source weights, the MLP fit and the
held-out protocol. Used by `lab/train_offline_judge_v3.py` and `lab/offline_judge_agreement.py`.

Rows are v2's (`offline_train.select_rows`: every source of `trainsets.ALL_SOURCES`, exact duplicates
once, MedSafety-Eval reference safe responses never trained on); the protocol's splits are v2's
(`offline_train.protocol_splits`: leave-one-source-out over the five judge-train sets, then 5-fold CV
on HarmBench val grouped by behaviour), here with every row trainable.

Features are computed once per row by the judge's own inference path (`offline_v3.PooledRunner`, ONNX
Runtime) and kept under `$MEDSAFETYBENCH_CACHE/judge-v3-features/<graph key>/`, one file per chunk of
rows named by the hash of the chunk's pair fingerprints: a killed run resumes, and the features a
fit sees are the ones the shipped judge computes.

So that no source dominates, each source gets the same total weight `source_budget`, split evenly
over its rows (`half_weight_sources` can halve a source's share; none by default); a fit's weights
are recomputed over its own training rows. The MLP is fitted by AdamW over seeded minibatches in torch
(float32, one thread, fixed seed): the same rows and config give the same weights bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lab.trainsets import LabelledPair
from medsafetybench.judging.offline.fingerprints import pair_fingerprint
from medsafetybench.judging.offline.v3 import MLP, POOLED_DIM, PooledRunner, feature_matrix, lexical_features

CHUNK = 512


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fit depends on besides its rows."""

    hidden: int = 64
    epochs: int = 20
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.2
    dropout: float = 0.5
    seed: int = 0
    source_budget: float = 1000.0
    half_weight_sources: tuple[str, ...] = ()
    class_balance: bool = False
    """Split each source's budget evenly between its harmful and its harmless rows."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_weights(sources: Sequence[str], config: TrainConfig, labels: Sequence[int] | None = None) -> np.ndarray:
    """Per-row weights: each source's rows share `source_budget` (half for `half_weight_sources`;
    with `class_balance`, split evenly between the source's two labels), normalised to mean 1."""
    src = np.asarray(sources)
    y = np.zeros(len(src), dtype=int) if labels is None else np.asarray(labels, dtype=int)
    w = np.zeros(len(src))
    for s in np.unique(src):
        rows = src == s
        budget = config.source_budget * (0.5 if s in config.half_weight_sources else 1.0)
        groups = [rows & (y == c) for c in (0, 1)] if config.class_balance else [rows]
        groups = [g for g in groups if g.any()]
        for g in groups:
            w[g] = budget / len(groups) / g.sum()
    return w / w.mean() if len(w) else w


# ---------------------------------------------------------------------------------------------
# Features, computed once per row.


def feature_root() -> Path:
    from medsafetybench.minilm import runtime

    return runtime.cache_dir().parent / "judge-v3-features"


def row_features(
    rows: Sequence[LabelledPair],
    runner: PooledRunner | None = None,
    root: Path | None = None,
    log: Callable[[str], None] = print,
) -> np.ndarray:
    """The judge's feature matrix for `rows` (cached per chunk of rows)."""
    runner = runner or PooledRunner("onnx")
    folder = (root or feature_root()) / runner.key()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    t0 = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        h = hashlib.sha256(b"v3-features-1")
        for r in chunk:
            h.update(pair_fingerprint(r.request, r.response).to_bytes(8, "little"))
        path = folder / f"{h.hexdigest()[:24]}.npy"
        if path.is_file():
            pooled = np.load(path)
        else:
            pooled = runner([r.request for r in chunk], [r.response for r in chunk]).astype(np.float32)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, pooled)
            tmp.replace(path)
            log(f"features: {start + len(chunk)}/{len(rows)} rows, {time.perf_counter() - t0:.0f} s")
        if pooled.shape != (len(chunk), POOLED_DIM):
            raise ValueError(f"feature cache {path} has shape {pooled.shape}: delete it")
        lex = np.vstack([lexical_features(r.request, r.response) for r in chunk])
        out.append(feature_matrix(pooled, lex))
    return np.vstack(out) if out else np.zeros((0, 0))


# ---------------------------------------------------------------------------------------------
# Fitting.


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, config: TrainConfig) -> MLP:
    """Fit the MLP on rows x (labels y, row weights w): AdamW over seeded minibatches, float32, one
    thread, learning rate decayed linearly to zero; deterministic for the inputs and config."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mean = x.mean(0)
        scale = x.std(0)
        scale[scale < 1e-8] = 1.0
        g = torch.Generator().manual_seed(config.seed)
        xs = torch.from_numpy(((x - mean) / scale).astype(np.float32))
        yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
        wt = torch.from_numpy(np.asarray(w, dtype=np.float32))
        d = x.shape[1]
        w1 = (torch.randn(d, config.hidden, generator=g) * (2.0 / d) ** 0.5).requires_grad_()
        b1 = torch.zeros(config.hidden, requires_grad=True)
        w2 = (torch.randn(config.hidden, generator=g) * (1.0 / config.hidden) ** 0.5).requires_grad_()
        b2 = torch.zeros((), requires_grad=True)
        params = [w1, b1, w2, b2]
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, -(-len(x) // config.batch))
        total = config.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=g)
            for k in range(steps_per_epoch):
                b = order[k * config.batch : (k + 1) * config.batch]
                h = torch.relu(xs[b] @ w1 + b1)
                if config.dropout:
                    keep = (torch.rand(h.shape, generator=g) >= config.dropout).float()
                    h = h * keep / (1 - config.dropout)
                loss = (
                    torch.nn.functional.binary_cross_entropy_with_logits(h @ w2 + b2, yt[b], reduction="none") * wt[b]
                ).sum() / wt[b].sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        t = [p.detach().double().numpy().copy() for p in params]
        return MLP(mean, scale, t[0], t[1], t[2], np.array([float(t[3])]))
    finally:
        torch.set_num_threads(threads)


def predict(model: MLP, x: np.ndarray) -> np.ndarray:
    return model.predict_proba(x)


# ---------------------------------------------------------------------------------------------
# The held-out protocol.


def benign_compliance(data: str | Path) -> dict[str, set[int]]:
    """Pair fingerprints of the rows where v1 fails (harmless help to benign requests): OpenAI RBR
    gold completions to prompts labelled `Comply`, and every MediCheck row."""
    from lab import trainsets

    out = {"openai-rbr-gold:comply": set(), "medicheck": set()}
    for _, r in trainsets.rbr_rows(Path(data)):
        if r["response_type"] == "Comply":
            request = next(m["content"] for m in reversed(r["prompt"]) if m["role"] == "user")
            out["openai-rbr-gold:comply"].add(pair_fingerprint(request, r["completion"][-1]["content"]))
    out["medicheck"] = {pair_fingerprint(r.request, r.response) for r in trainsets.medicheck(Path(data))}
    return out


@dataclass(frozen=True)
class ProtocolResult:
    """Out-of-sample p(harmful) of every tested row, per split, and the fit times."""

    p: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    fit_seconds: dict[str, float]


def run_protocol(
    rows: Sequence[LabelledPair], x: np.ndarray, config: TrainConfig, folds: int = 5, log: Callable[[str], None] = print
) -> ProtocolResult:
    """One fit per split of `offline_train.protocol_splits` (every row trainable)."""
    from lab.offline_train import protocol_splits

    y = np.array([r.label for r in rows], dtype=np.float64)
    src = [r.source for r in rows]
    p, test, secs = {}, {}, {}
    for split in protocol_splits(rows, np.ones(len(rows), dtype=bool), folds=folds, seed=config.seed):
        if not len(split.test):
            continue
        t0 = time.perf_counter()
        model = fit(
            x[split.train],
            y[split.train],
            source_weights([src[i] for i in split.train], config, y[split.train]),
            config,
        )
        secs[split.name] = time.perf_counter() - t0
        p[split.name] = model.predict_proba(x[split.test])
        test[split.name] = split.test
        log(f"{split.name}: fit on {len(split.train)} rows in {secs[split.name]:.0f} s")
    return ProtocolResult(p, test, secs)
