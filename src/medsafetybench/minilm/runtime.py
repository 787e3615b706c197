"""The fast inference path for MiniLM graphs: ONNX export (cached on disk), ONNX Runtime sessions, and
running encoded rows in length-sorted batches, plus the torch reference path with the same batching.

An exported graph is cached under `$MEDSAFETYBENCH_CACHE/onnx/` (default `~/.cache/medsafetybench/
onnx/`) in a file named by a key that says what it was built from (the caller passes the weights'
digest and the graph kind; `EXPORT_VERSION` is added): rebuilt weights never meet a stale graph. The
file is written to a temporary name and renamed, so a killed export leaves nothing half-written.

Why ONNX Runtime: on this project's AMD CPUs its float32 path embeds several times faster than torch's
(`bench/embedding_speed.py`: 3.8x against sentence-transformers in one process). Outputs agree with
torch within float32 rounding; `tests/minilm/test_minilm.py` pins the tolerance.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import require
from .tokens import Batch, length_batches, pad

EXPORT_VERSION = 1
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
DEFAULT_MAX_TOKENS = 8192  # padded tokens per batch
_lock = threading.Lock()
_sessions: dict[tuple[str, int], Any] = {}


def cache_dir() -> Path:
    """`$MEDSAFETYBENCH_CACHE/onnx`, else `~/.cache/medsafetybench/onnx`."""
    root = os.environ.get("MEDSAFETYBENCH_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "medsafetybench"
    return base / "onnx"


def export_onnx(module: Any, path: Path) -> Path:
    """Export a graph taking (input_ids, token_type_ids, attention_mask) [batch, tokens] to ONNX at
    `path` (atomically); dynamic batch and token axes."""
    torch = require("torch", "offline", "Exporting the MiniLM graph")
    require("onnx", "offline", "Exporting the MiniLM graph")
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    types = torch.zeros_like(ids)
    mask = (ids != 0).long()
    axes = {n: {0: "batch", 1: "tokens"} for n in INPUT_NAMES}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (ids, types, mask),
                tmp,
                input_names=list(INPUT_NAMES),
                output_names=["output"],
                dynamic_axes={**axes, "output": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of the graph's matrix products (weights per channel), atomically."""
    q = require("onnxruntime.quantization", "offline", "Quantising the MiniLM graph")
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name, suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q.quantize_dynamic(
                str(src), tmp, weight_type=q.QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def cached_graph(key: str, build: Callable[[], Any], *, int8: bool = False) -> Path:
    """Path of the ONNX graph named `key`, exported from `build()` (a torch module) on first use; with
    `int8`, its dynamically quantised copy."""
    base = cache_dir() / f"{key}-x{EXPORT_VERSION}.onnx"
    if not base.is_file():
        export_onnx(build(), base)
    if not int8:
        return base
    q = base.with_name(base.stem + "-int8.onnx")
    if not q.is_file():
        quantize_int8(base, q)
    return q


class OrtGraph:
    """An ONNX Runtime session over a MiniLM graph, shared per (file, threads) within a process."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        ort = require("onnxruntime", "offline", "The fast MiniLM path")
        key = (str(path), threads)
        with _lock:
            if key not in _sessions:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                opts.log_severity_level = 3
                _sessions[key] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self.session = _sessions[key]
        self.path = path

    def __call__(self, batch: Batch) -> np.ndarray:
        return self.session.run(
            None,
            {
                "input_ids": batch.input_ids,
                "token_type_ids": batch.token_type_ids,
                "attention_mask": batch.attention_mask,
            },
        )[0]


def torch_runner(module: Any) -> Callable[[Batch], np.ndarray]:
    """The reference path: the torch module (float32, eval mode) on a padded batch."""
    torch = require("torch", "offline", "The MiniLM reference path")
    module.eval()

    def run(batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            out = module(
                torch.from_numpy(batch.input_ids),
                torch.from_numpy(batch.token_type_ids),
                torch.from_numpy(batch.attention_mask),
            )
        return out.float().numpy()

    return run


def for_each_batch(
    runner: Callable[[Batch], np.ndarray],
    rows: Sequence[tuple[list[int], list[int]]],
    on_batch: Callable[[list[int], np.ndarray], None],
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> None:
    """Run encoded rows in length-sorted batches of at most `max_tokens` padded tokens, calling
    `on_batch(row indices, outputs)` after each (outputs may depend on the batch's width)."""
    for idx in length_batches([len(r[0]) for r in rows], max_tokens):
        on_batch(idx, runner(pad([rows[i] for i in idx])))


def run_rows(
    runner: Callable[[Batch], np.ndarray],
    rows: Sequence[tuple[list[int], list[int]]],
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> np.ndarray:
    """One output row per encoded row (float32, in input order), computed in length-sorted batches."""
    out: list[np.ndarray | None] = [None] * len(rows)

    def keep(idx: list[int], got: np.ndarray) -> None:
        for j, i in enumerate(idx):
            out[i] = got[j]

    for_each_batch(runner, rows, keep, max_tokens)
    if not rows:
        return np.zeros((0,), dtype=np.float32)
    return np.stack(out).astype(np.float32)  # type: ignore[arg-type]
