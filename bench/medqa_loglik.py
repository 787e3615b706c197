"""Questions per second of log-likelihood scoring on the tiny model over all 1,089 MMLU-medical questions:
one forward pass per choice (the harness' computation, unbatched) vs batched with the context run once.

    PYTHONPATH=src python bench/medqa_loglik.py [--data ../shared/data/medqa] [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from medsafetybench.medqa.loglik import LogLikScorer, predictions
from medsafetybench.medqa.tasks import load_task, resolve_tasks
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.tiny import ensure_tiny_llama


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medqa")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    qs = [q for t in resolve_tasks(["mmlu_medical"]) for q in load_task(t, args.data)]
    m = HFChatModel(ensure_tiny_llama(), prompt_format="raw")
    m.load()
    inputs = [(q.prompt, q.choices) for q in qs]
    runs = {}
    for name, fn in (("one at a time", LogLikScorer(m.model, m.tokenizer).score_one_at_a_time),
                     (f"batched (batch {args.batch_size})", LogLikScorer(m.model, m.tokenizer, batch_size=args.batch_size).score)):
        t0 = time.perf_counter()
        lls = fn(inputs)
        dt = time.perf_counter() - t0
        acc = sum(predictions(q.choices, r)[0] == q.gold for q, r in zip(qs, lls, strict=True)) / len(qs)
        runs[name] = (dt, acc)
        print(f"{name:>22}: {len(qs)} questions in {dt:6.1f} s = {len(qs) / dt:7.1f} q/s, acc {acc:.4f}")
    (d0, a0), (d1, a1) = runs.values()
    print(f"speed-up batched / one at a time: {d0 / d1:.1f}x; same accuracy: {a0 == a1}")


if __name__ == "__main__":
    main()
