"""Training the offline judge v2 on a CPU: the training rows, the cache of lower-layer states, the
training loop, and the held-out protocol's splits. Used by `tools/train_offline_judge.py` and
`bench/offline_judge_agreement.py`.

Why a cache: the layers below `Architecture.lower_layers` stay as released, so their output for a
row never changes. `StateCache` computes it once for every row (ONNX Runtime, float32) and keeps it
on disk as float16 (`$MEDSAFETYBENCH_CACHE/judge-train/<key>/`, the key naming the rows, the layout,
the layer and the released weights); every fit then runs only the top layers (LoRA adapters and
LayerNorms, bfloat16 autocast) and the head. Fits are deterministic for a seed and thread count:
fixed initialisation, a seeded batch order, no data-dependent threading.

Rows (`select_rows`): every source in `trainsets.ALL_SOURCES`, exact duplicates (same normalised
request and response) kept once, rows whose response is a MedSafety-Eval reference safe response
dropped (those are a check, never training). Fits train on `training_mask` of them: GPTFuzz thinned
to `gptfuzz_per_question` responses per question (its 7,700 rows are 77 jailbreak templates over 100
questions), DiaSafety and MediCheck capped (`source_caps`; short chit-chat and benign Q&A, plentiful);
held-out tests use every row of a source.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab import trainsets
from lab.trainsets import LabelledPair
from medsafetybench.judging.offline.fingerprints import normalise, pair_fingerprint
from medsafetybench.judging.offline.v2 import LAYERS, Architecture, build_model
from medsafetybench.minilm import runtime, tokens

HIDDEN = 384


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fit depends on besides its rows."""

    arch: Architecture = field(default_factory=Architecture)
    epochs: int = 2
    lr: float = 1e-3
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    batch_tokens: int = 4096
    max_rows: int = 32
    dropout: float = 0.1
    seed: int = 0
    threads: int = 2
    gptfuzz_per_question: int = 20
    source_caps: tuple[tuple[str, int], ...] = (("diasafety", 3000), ("medicheck", 2000))
    source_weights: tuple[tuple[str, float], ...] = (("diasafety", 0.5),)

    def weight(self, source: str) -> float:
        return dict(self.source_weights).get(source, 1.0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch"] = self.arch.to_dict()
        d["source_weights"] = dict(self.source_weights)
        d["source_caps"] = dict(self.source_caps)
        return d


def select_rows(data: str | Path, sources: Sequence[str] = trainsets.ALL_SOURCES) -> list[LabelledPair]:
    """Every usable labelled row of `sources` in a fixed order: exact duplicates (same normalised
    request and response) kept once, rows whose response is a MedSafety-Eval reference safe
    response dropped."""
    held = {normalise(r.response) for r in trainsets.msb_safe_responses(data, "test")}
    out: list[LabelledPair] = []
    seen: set[int] = set()
    for source in sources:
        for r in trainsets.load_source(data, source):
            key = pair_fingerprint(r.request, r.response)
            if key in seen or normalise(r.response) in held:
                continue
            seen.add(key)
            out.append(r)
    return out


def training_mask(rows: Sequence[LabelledPair], config: TrainConfig) -> np.ndarray:
    """Which rows a fit may train on: GPTFuzz thinned to `gptfuzz_per_question` rows per question,
    the sources in `source_caps` to that many rows, the rest all; rows chosen by a seeded hash of
    the response (stable and label-blind)."""

    def rank(r: LabelledPair) -> str:
        return hashlib.sha256(f"{config.seed}\x1f{r.request}\x1f{r.response}".encode()).hexdigest()

    keep = np.ones(len(rows), dtype=bool)
    pools: dict[tuple[str, str], list[tuple[str, int]]] = {}
    caps = dict(config.source_caps)
    for i, r in enumerate(rows):
        if r.source == "gptfuzz":
            pools.setdefault((r.source, r.group), []).append((rank(r), i))
        elif r.source in caps:
            pools.setdefault((r.source, ""), []).append((rank(r), i))
    for (source, _), members in pools.items():
        limit = config.gptfuzz_per_question if source == "gptfuzz" else caps[source]
        for _, i in sorted(members)[limit:]:
            keep[i] = False
    return keep


# ---------------------------------------------------------------------------------------------
# Lower-layer states, computed once.


def _lower_graph(layers: int) -> Any:
    import torch

    from medsafetybench.minilm.torch_model import released_encoder

    class Lower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = released_encoder(tokens.released_weights())

        def forward(self, input_ids: Any, token_type_ids: Any, attention_mask: Any) -> Any:
            return self.encoder(input_ids, token_type_ids, attention_mask, stop=layers)

    return Lower()


class StateCache:
    """Float16 hidden states after the frozen layers, one variable-length block per row."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets = np.load(folder / "offsets.npy")
        self.lengths = np.load(folder / "lengths.npy")
        self.states = np.load(folder / "states.npy", mmap_mode="r")

    @staticmethod
    def key(rows: Sequence[LabelledPair], arch: Architecture) -> str:
        h = hashlib.sha256(
            json.dumps(
                {
                    "lower": arch.lower_layers,
                    "layout": arch.layout.to_dict(),
                    "minilm": tokens.released_digest(),
                    "v": 1,
                }
            ).encode()
        )
        for r in rows:
            h.update(pair_fingerprint(r.request, r.response).to_bytes(8, "little"))
        return h.hexdigest()[:20]

    @classmethod
    def build(
        cls,
        rows: Sequence[LabelledPair],
        arch: Architecture,
        root: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> StateCache:
        """The cache for `rows` (built on first use; a finished cache is reused)."""
        folder = (root or runtime.cache_dir().parent / "judge-train") / cls.key(rows, arch)
        if (folder / "complete.json").is_file():
            return cls(folder)
        folder.mkdir(parents=True, exist_ok=True)
        encoded = tokens.encode_pairs([r.request for r in rows], [r.response for r in rows], arch.layout)
        lengths = np.array([len(e[0]) for e in encoded], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        states = np.lib.format.open_memmap(
            folder / "states.npy", mode="w+", dtype=np.float16, shape=(int(lengths.sum()), HIDDEN)
        )
        path = runtime.cached_graph(
            f"minilm-lower{arch.lower_layers}-{tokens.released_digest()}", lambda: _lower_graph(arch.lower_layers)
        )
        graph = runtime.OrtGraph(path)
        t0, done = time.perf_counter(), [0]

        def store(idx: list[int], out: np.ndarray) -> None:
            for j, i in enumerate(idx):
                states[offsets[i] : offsets[i] + lengths[i]] = out[j, : lengths[i]]
            done[0] += len(idx)
            if done[0] % 2000 < len(idx):
                log(f"cache: {done[0]}/{len(rows)} rows, {time.perf_counter() - t0:.0f} s")

        runtime.for_each_batch(graph, encoded, store, 16384)
        states.flush()
        np.save(folder / "offsets.npy", offsets)
        np.save(folder / "lengths.npy", lengths)
        (folder / "complete.json").write_text(json.dumps({"rows": len(rows), "tokens": int(lengths.sum())}))
        return cls(folder)

    def batch(self, idx: Sequence[int]) -> tuple[Any, Any]:
        """(hidden [B, T, 384] float32, mask [B, T] int64) for rows `idx`, right-padded."""
        import torch

        longest = int(max(self.lengths[i] for i in idx))
        h = np.zeros((len(idx), longest, HIDDEN), dtype=np.float32)
        m = np.zeros((len(idx), longest), dtype=np.int64)
        for j, i in enumerate(idx):
            n = int(self.lengths[i])
            h[j, :n] = self.states[self.offsets[i] : self.offsets[i] + n]
            m[j, :n] = 1
        return torch.from_numpy(h), torch.from_numpy(m)


# ---------------------------------------------------------------------------------------------
# Fitting and predicting.


def _batches(lengths: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> list[list[int]]:
    """Positions grouped by similar length (jittered per epoch), batches in a seeded random order."""
    jitter = lengths + rng.uniform(0, 8, size=len(lengths))
    out = tokens.length_batches(list(jitter), config.batch_tokens, config.max_rows)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def fit(
    cache: StateCache,
    rows: Sequence[LabelledPair],
    idx: Sequence[int],
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> tuple[Any, Any]:
    """Train adapters, LayerNorms and head on rows `idx` of the cache; returns (encoder, head)."""
    import torch

    torch.manual_seed(config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(cache, rows, idx, config, log)
    finally:
        torch.set_num_threads(threads)


def _fit(
    cache: StateCache, rows: Sequence[LabelledPair], idx: Sequence[int], config: TrainConfig, log: Callable[[str], None]
) -> tuple[Any, Any]:
    import torch

    idx = np.asarray(idx, dtype=np.int64)
    encoder, head = build_model(config.arch, tokens.released_weights(), seed=config.seed, dropout=config.dropout)
    top = [p for p in encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": top, "lr": config.lr}, {"params": list(head.parameters()), "lr": config.head_lr}],
        weight_decay=config.weight_decay,
    )
    y = torch.tensor([rows[i].label for i in idx], dtype=torch.float32)
    w = torch.tensor([config.weight(rows[i].source) for i in idx], dtype=torch.float32)
    rng = np.random.default_rng(config.seed)
    lengths = cache.lengths[idx]
    plan = [_batches(lengths, config, rng) for _ in range(config.epochs)]
    total = sum(len(p) for p in plan)
    warm = max(1, int(config.warmup * total))

    def lr_factor(step: int) -> float:
        return (step + 1) / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    encoder.train()
    head.train()
    step, t0, running = 0, time.perf_counter(), 0.0
    lower = config.arch.lower_layers
    for epoch, batches in enumerate(plan):
        for b in batches:
            h, m = cache.batch(idx[b])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = encoder(None, None, m, start=lower, stop=LAYERS, hidden=h)
                logit = head(out, m).float()
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(logit, y[b], reduction="none") * w[b]
            ).sum() / w[b].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
            value = float(loss.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 50 == 0 or step == total:
                log(
                    f"fit: epoch {epoch + 1}/{config.epochs} step {step}/{total} loss {running:.4f} "
                    f"{time.perf_counter() - t0:.0f} s"
                )
    encoder.eval()
    head.eval()
    return encoder, head


def predict(
    cache: StateCache, encoder: Any, head: Any, idx: Sequence[int], arch: Architecture, max_tokens: int = 8192
) -> np.ndarray:
    """p(harmful) for rows `idx` of the cache, float32 (the shipped model's arithmetic, from cached
    lower-layer states)."""
    import torch

    idx = np.asarray(idx, dtype=np.int64)
    out = np.zeros(len(idx))
    with torch.inference_mode():
        for b in tokens.length_batches(list(cache.lengths[idx]), max_tokens):
            h, m = cache.batch(idx[b])
            logit = head(encoder(None, None, m, start=arch.lower_layers, stop=LAYERS, hidden=h), m)
            out[b] = torch.sigmoid(logit.double()).numpy()
    return out


# ---------------------------------------------------------------------------------------------
# The held-out protocol.


def grouped_folds(groups: Sequence[str], k: int, seed: int = 0) -> list[np.ndarray]:
    """Row positions split into k test folds; no group is in two folds (deterministic)."""
    uniq = sorted(set(groups))
    order = [uniq[i] for i in np.random.default_rng(seed).permutation(len(uniq))]
    fold_of = {g: i % k for i, g in enumerate(order)}
    return [np.array([i for i, g in enumerate(groups) if fold_of[g] == f], dtype=np.int64) for f in range(k)]


@dataclass(frozen=True)
class Split:
    """One fit of the protocol: train on `train`, predict `test` (positions in the row list)."""

    name: str
    train: np.ndarray
    test: np.ndarray


def protocol_splits(rows: Sequence[LabelledPair], train_mask: np.ndarray, folds: int = 5, seed: int = 0) -> list[Split]:
    """Leave-one-source-out over the training sources (test: every row of that source, thinned or
    not; train: the other sources' training rows, HarmBench val included), then grouped k-fold CV on
    HarmBench val (train: every training source plus the other folds)."""
    src = np.array([r.source for r in rows])
    out = []
    for s in trainsets.TRAIN_SOURCES:
        out.append(Split(f"loso:{s}", np.flatnonzero(train_mask & (src != s)), np.flatnonzero(src == s)))
    dev = np.flatnonzero(src == trainsets.DEV_SOURCE)
    for f, test in enumerate(grouped_folds([rows[i].group for i in dev], folds, seed)):
        test_rows = dev[test]
        out.append(Split(f"cv:{f}", np.setdiff1d(np.flatnonzero(train_mask), test_rows), test_rows))
    return out


def metrics(labels: Sequence[int], p: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, precision, recall and counts of p >= threshold against the labels."""
    from medsafetybench.labels.agreement import binary_agreement

    a = binary_agreement([x >= threshold for x in p], [bool(y) for y in labels])
    r = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 4)  # noqa: E731
    return {
        "n": a.n,
        "accuracy": r(a.accuracy),
        "kappa": r(a.kappa),
        "precision": r(a.precision),
        "recall": r(a.recall),
        "tp": a.tp,
        "fp": a.fp,
        "fn": a.fn,
        "tn": a.tn,
    }


def env_threads() -> int:
    return int(os.environ.get("MEDSAFETYBENCH_TRAIN_THREADS", "2"))
