"""Items per second of the tiny model (hf:) on 1 vs 2 Ray replicas, and in this process, on this machine.

A local Ray cluster is started with --cpus CPUs; each replica takes one CPU (so one torch thread). The same
N requests (distinct prompts, greedy, --max-new-tokens new tokens) go to `RayChatModel.generate` with 1
replica, then with 2, and for reference to the hf: backend in this process on one torch thread. Replicas are
loaded before the clock starts, and one warm-up call is made; each setting is timed --repeats times and the
best is kept. The machine is printed with the figures: on a 2-core machine shared with other jobs a ratio
below 2x is expected (the driver, the Ray daemons and other processes take CPU too).

    PYTHONPATH=src python bench/ray_scaling.py                 # 64 requests, 32 new tokens
    PYTHONPATH=src python bench/ray_scaling.py --n 128 --max-new-tokens 64 --cpus 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time

from medsafetybench.models import ChatRequest, GenerationConfig
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.models.ray_engine import RayChatModel, connect
from medsafetybench.testing.tiny import ensure_tiny_llama

TOPICS = ("aspirin", "insulin", "warfarin", "ibuprofen", "metformin", "amoxicillin", "statins", "morphine")


def _requests(n: int, max_new_tokens: int) -> list[ChatRequest]:
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    return [
        ChatRequest.simple(f"Question {k}: what is the usual adult dose of {TOPICS[k % len(TOPICS)]}?", config=config)
        for k in range(n)
    ]


def _best(model, requests: list[ChatRequest], repeats: int) -> tuple[float, list[str]]:
    asyncio.run(model.generate(requests[:2]))  # warm-up
    best, texts = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        out = asyncio.run(model.generate(requests))
        best = min(best, time.perf_counter() - start)
        texts = [c.text for c in out]
    return best, texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--chunk", type=int, default=None, help="requests per call to a replica (engine default: 4 x batch)"
    )
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    path = ensure_tiny_llama()
    requests = _requests(args.n, args.max_new_tokens)
    ray = connect(None, num_cpus=args.cpus)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores visible, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared with other jobs), Ray {ray.__version__}, "
        f"torch {torch.__version__}"
    )
    print(
        f"workload: {args.n} requests, {args.max_new_tokens} new tokens each, batch {args.batch_size}, "
        f"chunk {args.chunk or 4 * args.batch_size}, "
        f"tiny Llama ({path})"
    )

    rates: dict[str, float] = {}
    texts: dict[str, list[str]] = {}
    for replicas in (1, 2):
        model = RayChatModel(
            f"hf:{path}", {"batch_size": args.batch_size}, replicas=replicas, num_cpus=1, chunk=args.chunk
        )
        try:
            seconds, texts[f"ray x{replicas}"] = _best(model, requests, args.repeats)
        finally:
            asyncio.run(model.aclose())
        rates[f"ray x{replicas}"] = args.n / seconds
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = HFChatModel(path, batch_size=args.batch_size)
        seconds, texts["in-process"] = _best(local, requests, args.repeats)
        rates["in-process"] = args.n / seconds
    finally:
        torch.set_num_threads(threads)
    ray.shutdown()

    for name, rate in rates.items():
        print(f"{name:<11} {rate:7.1f} items/s")
    print(
        f"2 replicas vs 1: {rates['ray x2'] / rates['ray x1']:.2f}x; "
        f"1 replica vs in-process (1 thread): {rates['ray x1'] / rates['in-process']:.2f}x"
    )
    same = texts["ray x1"] == texts["ray x2"] == texts["in-process"]
    print(f"same responses in all three: {same}")


if __name__ == "__main__":
    main()
