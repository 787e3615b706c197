"""vllm: against hf: on the same tiny model and prompts (run it from the vLLM venv, `.venv-vllm`).

Both backends serve the tiny Llama with its heads widened to 64 (`tiny.widen_heads`: the same function;
vLLM's CPU attention needs head_dim >= 32), in fp32, in one process: hf: in batches (its best settings
from bench/hf_generation.py), then vllm: (engine start timed apart; eager mode, as in the tests). It
prints items/s for each, the ratio, whether greedy outputs are identical, and the machine.

    .venv-vllm/bin/python bench/vllm_vs_hf.py [--prompts 64] [--new-tokens 64] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import time
from pathlib import Path

from hf_generation import requests
from medsafetybench.models.hf_backend import HFChatModel
from medsafetybench.models.vllm_backend import VLLMChatModel
from medsafetybench.testing.tiny import default_tiny_model_dir, ensure_tiny_llama, widen_heads


def wide_tiny() -> Path:
    """The widened tiny model next to the tiny model's cache (built once)."""
    path = default_tiny_model_dir().parent / "tiny-llama-v1-wide64"
    if not (path / "model.safetensors").is_file():
        widen_heads(ensure_tiny_llama(), path)
    return path


def timed(model, reqs) -> tuple[float, list]:
    start = time.perf_counter()
    out = asyncio.run(model.generate(reqs))
    return time.perf_counter() - start, out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64, help="hf: batch size")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for hf: (vLLM binds its own)")
    args = ap.parse_args()
    if importlib.util.find_spec("vllm") is None:
        print("skipped: vLLM is not installed here; run this from .venv-vllm (`make test-vllm` creates it)")
        return
    torch.set_num_threads(args.threads)
    path = wide_tiny()
    reqs = requests(args.prompts, args.new_tokens)
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores usable, load average "
        f"{os.getloadavg()[0]:.1f} | model {path} (fp32) | {args.prompts} prompts x <= {args.new_tokens} new tokens"
    )

    hf = HFChatModel(path, batch_size=args.batch, dtype="float32")
    hf.load()
    timed(hf, reqs[:4])  # warm-up
    hf_s, hf_out = timed(hf, reqs)
    tokens = sum(c.usage.completion_tokens for c in hf_out)
    print(
        f"hf:   batch {args.batch:>3}, torch threads {torch.get_num_threads()}: {hf_s:6.2f} s  "
        f"{args.prompts / hf_s:7.1f} items/s  {tokens / hf_s:8.1f} tok/s"
    )

    vl = VLLMChatModel(path, dtype="float32", enforce_eager=True, kv_cache_memory_bytes=256 << 20)
    start = time.perf_counter()
    vl.start()
    start_s = time.perf_counter() - start
    timed(vl, reqs[:4])  # warm-up
    vl_s, vl_out = timed(vl, reqs)
    same = sum(a.text == b.text for a, b in zip(vl_out, hf_out, strict=True))
    print(
        f"vllm: engine start {start_s:5.1f} s (once per process), then {vl_s:6.2f} s  "
        f"{args.prompts / vl_s:7.1f} items/s  {tokens / vl_s:8.1f} tok/s"
    )
    print(f"vllm/hf items/s ratio: x{hf_s / vl_s:.2f} | identical greedy outputs: {same}/{len(reqs)}")
    assert same == len(reqs), "vllm: and hf: greedy outputs differ"


if __name__ == "__main__":
    main()
