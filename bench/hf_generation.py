"""Batched vs one-at-a-time generation with the hf: backend on the tiny Llama.

The original MedSafetyBench scripts call `model.generate` once per prompt; `HFChatModel(batch_size=1)`
does exactly that. This prints the seconds for that baseline and for the backend's batches (longest
first, the shared system-prompt prefix computed once per batch, a static KV cache; same process, same
model, same prompts: two thirds carry the Llama-2 default system prompt), the speed-up, and checks
that greedy outputs are identical.

    PYTHONPATH=src python bench/hf_generation.py [--prompts 64] [--new-tokens 64] [--batch 16 32]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from medsafetybench.models import ChatRequest, GenerationConfig
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.principles import LLAMA2_DEFAULT_SYSTEM_PROMPT
from medsafetybench.testing.tiny import ensure_tiny_llama

TOPICS = ["asthma", "diabetes", "hypertension", "migraine", "influenza", "anemia", "eczema", "gout"]
ASKS = [
    "What is {t}, and how is it usually treated?",
    "Write a short note for a patient newly diagnosed with {t}.",
    "Explain to a first-year medical student how {t} is diagnosed, which tests are ordered, and why.",
    "Please help me with this request about {t}.",
]


def requests(n: int, new_tokens: int) -> list[ChatRequest]:
    config = GenerationConfig(max_new_tokens=new_tokens)
    return [
        ChatRequest.simple(
            ASKS[i % len(ASKS)].format(t=TOPICS[(i // len(ASKS)) % len(TOPICS)]),
            system=LLAMA2_DEFAULT_SYSTEM_PROMPT if i % 3 else None,
            config=config,
        )
        for i in range(n)
    ]


def timed(model: HFChatModel, reqs: list[ChatRequest]) -> tuple[float, list]:
    start = time.perf_counter()
    out = asyncio.run(model.generate(reqs))
    return time.perf_counter() - start, out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model dir (default: the cached tiny Llama)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.model or ensure_tiny_llama()
    reqs = requests(args.prompts, args.new_tokens)

    single = HFChatModel(path, batch_size=1)
    single.load()
    timed(single, reqs[:2])  # warm-up
    base_s, base = timed(single, reqs)
    tokens = sum(c.usage.completion_tokens for c in base)
    print(
        f"model {path} | {args.prompts} prompts x <= {args.new_tokens} new tokens "
        f"({tokens} generated) | torch threads {torch.get_num_threads()} | device {single.device}"
    )
    print(f"one at a time : {base_s:7.2f} s  ({tokens / base_s:7.1f} tok/s)")
    for b in args.batch:
        model = HFChatModel(path, batch_size=b)
        model.load()
        secs, out = timed(model, reqs)
        same = [c.text for c in out] == [c.text for c in base]
        print(
            f"batch {b:>3}     : {secs:7.2f} s  ({tokens / secs:7.1f} tok/s)  speed-up x{base_s / secs:5.2f}"
            f"  outputs identical: {same}"
        )
        assert same, f"batch {b} outputs differ from one-at-a-time outputs"


if __name__ == "__main__":
    main()
