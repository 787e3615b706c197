"""GCG seconds per step on the tiny Llama: 128 and 512 candidates, with and without the prefix cache.

A step is one gradient pass, candidate sampling and the loss of every candidate. The baseline is the
same step with the whole sequence recomputed for each candidate (no prefix cache), measured in the same
process on the same model; the script prints the ratio and checks both give the same losses.

    PYTHONPATH=src python bench/gcg_step.py [--steps 3] [--candidates 128 512] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from medsafetybench.generation.gcg import GCG, GCGConfig
from medsafetybench.generation.prompts import gcg_goal, gcg_target
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.tiny import ensure_tiny_llama


def seconds_per_step(gcg: GCG, steps: int, use_cache: bool) -> float:
    gen = torch.Generator().manual_seed(0)
    current = list(gcg.init_ids)
    start = time.perf_counter()
    for _ in range(steps):
        grad, _ = gcg.gradient(current)
        cands = gcg.sample_candidates(current, grad, gen)
        losses = gcg.candidate_losses(cands, use_cache=use_cache)
        current = cands[int(torch.argmin(losses))].tolist()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--candidates", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = HFChatModel(ensure_tiny_llama())
    model.load()
    for n in args.candidates:
        gcg = GCG(model, gcg_goal(4), gcg_target(4), GCGConfig(num_candidates=n, top_k=256, batch_size=args.batch))
        grad, _ = gcg.gradient(gcg.init_ids)
        cands = gcg.sample_candidates(gcg.init_ids, grad, torch.Generator().manual_seed(0))
        same = torch.allclose(gcg.candidate_losses(cands, use_cache=True), gcg.candidate_losses(cands, use_cache=False),
                              rtol=1e-4, atol=1e-5)
        full = seconds_per_step(gcg, args.steps, use_cache=False)
        cached = seconds_per_step(gcg, args.steps, use_cache=True)
        print(f"{n:4d} candidates (prefix {len(gcg.before_ids)} tokens, suffix 20, tail+target "
              f"{len(gcg.after_ids) + len(gcg.target_ids)}): no cache {full:.3f} s/step, prefix cache "
              f"{cached:.3f} s/step, speed-up x{full / cached:.2f}, same losses: {same}")


if __name__ == "__main__":
    main()
