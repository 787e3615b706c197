"""MiniLM sentence embeddings: the ONNX Runtime path against the sentence-transformers (torch) path, in
one process, on the Llama-3 extra requests (split "extra", 74,374).

    .venv/bin/python bench/embedding_speed.py [--sample 3000] [--full] [--threads 2]

Prints, on an evenly spaced sample: texts/s of each path, the ratio, and the agreement of the vectors
(minimum and 0.1th percentile of the per-text cosine; the tolerance the project holds the fast path
to is cosine >= 0.999 per text). With --full, embeds all 74,374 requests on the fast path and prints
the time (the near-duplicate filter's first run; later runs read the vectors from the store).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from medsafetybench.data import load_official  # noqa: E402
from medsafetybench.minilm.embedding import embed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "med-safety-bench")
    ap.add_argument("--sample", type=int, default=3000)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (ONNX Runtime uses its default)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    texts = [it.request for it in load_official("extra", data_dir=args.data)]
    step = max(1, len(texts) // args.sample)
    sample = texts[::step][: args.sample]
    embed(sample[:32], backend="onnx")  # export / load once, outside the timing
    embed(sample[:32], backend="torch")
    t = time.perf_counter()
    fast = embed(sample, backend="onnx")
    fast_s = time.perf_counter() - t
    t = time.perf_counter()
    ref = embed(sample, backend="torch", batch_size=64)
    ref_s = time.perf_counter() - t
    cos = np.sum(fast * ref, axis=1)
    print(f"sample: {len(sample)} of {len(texts)} requests")
    print(f"torch (sentence-transformers): {len(sample) / ref_s:7.1f} texts/s ({ref_s:.1f} s)")
    print(f"onnx (ONNX Runtime, sorted):   {len(sample) / fast_s:7.1f} texts/s ({fast_s:.1f} s)")
    print(
        f"speed-up onnx / torch: {ref_s / fast_s:.2f}x; cosine min {cos.min():.7f}, "
        f"0.1th percentile {np.percentile(cos, 0.1):.7f}"
    )
    if args.full:
        t = time.perf_counter()
        vecs = embed(texts, backend="onnx")
        secs = time.perf_counter() - t
        print(f"full set: {len(texts)} requests in {secs:.1f} s ({len(texts) / secs:.0f}/s), shape {vecs.shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
