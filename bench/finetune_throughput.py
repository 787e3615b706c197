"""Training throughput and peak memory: our fine-tuning (`finetune.finetune`: Trainer, checkpoints for
resume, manifest) against a plain re-implementation of the official script's settings (a minimal
torch loop: same peft LoRA config, same tokenised examples, the same optimizer-step plan
(`finetune.schedule.step_plan`) with each micro-batch's mean loss / accumulation, pad 0 on the left
to a multiple of 8, AdamW with linear schedule) on the same data and the same tiny model.

Ours runs twice: as shipped (a resumable checkpoint every tenth of the run) and with
`save_steps=0` (no intermediate checkpoints), which separates the Trainer's cost from checkpointing's.
Each variant runs in its own child process (spawned), so peak RSS (`resource.getrusage` maxrss) is
its own; tokens/s counts the non-padding tokens of every example seen. Prints both and the ratio.

    PYTHONPATH=src python bench/finetune_throughput.py [--n 200] [--epochs 2] [--batch 32] [--micro 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "med-safety-bench"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _settings(args: dict):
    from medsafetybench.finetune import LoraSettings

    return LoraSettings(
        epochs=args["epochs"],
        lr=1e-3,
        batch_size=args["batch"],
        micro_batch_size=args["micro"],
        cutoff_len=256,
        warmup_steps=0,
        seed=0,
    )


def run_ours_no_checkpoints(args: dict, q: mp.Queue) -> None:
    run_ours(args, q, save_steps=0)


def run_ours(args: dict, q: mp.Queue, save_steps: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    from medsafetybench.finetune import finetune, resolve_training_data

    data = resolve_training_data("med", args["n"], data_dir=args["data"])
    tmp = Path(tempfile.mkdtemp())
    try:
        r = finetune(
            f"hf:{args['model']}", data, tmp / "out", _settings(args), data_dir=args["data"], save_steps=save_steps
        )
        m = r.manifest
        q.put(
            {
                "tokens": m["train_tokens"],
                "seconds": m["train_seconds"],
                "steps": m["steps"],
                "final_loss": m["final_loss"],
                "peak_rss_mib": _rss_mib(),
            }
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_plain(args: dict, q: mp.Queue) -> None:
    import torch

    torch.set_num_threads(1)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medsafetybench.finetune import resolve_training_data
    from medsafetybench.finetune.schedule import step_plan
    from medsafetybench.finetune.train import build_examples

    s = _settings(args)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args["model"])
    model = AutoModelForCausalLM.from_pretrained(args["model"], dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=s.lora_r,
            lora_alpha=s.lora_alpha,
            lora_dropout=s.lora_dropout,
            target_modules=list(s.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    examples, _ = build_examples(resolve_training_data("med", args["n"], data_dir=args["data"]).records, tok, s)
    plan = step_plan(len(examples), s.micro_batch_size, s.grad_accum, s.epochs, s.seed)
    steps = len(plan)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / steps)
    pad = 0
    model.train()
    tokens, done, last_loss, t0 = 0, 0, float("nan"), time.perf_counter()
    for step in plan:
        for idx in step:
            micro = [examples[i] for i in idx]
            tokens += sum(len(e["input_ids"]) for e in micro)
            width = -(-max(len(e["input_ids"]) for e in micro) // 8) * 8
            ids = torch.tensor([[pad] * (width - len(e["input_ids"])) + e["input_ids"] for e in micro])
            mask = torch.tensor([[0] * (width - len(e["input_ids"])) + [1] * len(e["input_ids"]) for e in micro])
            labels = torch.tensor([[-100] * (width - len(e["labels"])) + e["labels"] for e in micro])
            out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
            (out.loss / s.grad_accum).backward()
            last_loss = float(out.loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        done += 1
    seconds = time.perf_counter() - t0
    q.put(
        {
            "tokens": tokens,
            "seconds": round(seconds, 3),
            "steps": done,
            "final_loss": last_loss,
            "peak_rss_mib": _rss_mib(),
        }
    )


def _child(target, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(args, q))
    p.start()
    result = q.get()
    p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if not (DATA / "datasets").is_dir():
        raise SystemExit(f"official data not found at {DATA}")
    from medsafetybench.testing.tiny import ensure_tiny_llama

    model = ensure_tiny_llama()
    args = {"n": a.n, "epochs": a.epochs, "batch": a.batch, "micro": a.micro, "data": str(DATA), "model": str(model)}
    print(
        f"tiny Llama, med n={a.n}, {a.epochs:g} epochs, batch {a.batch} (micro {a.micro}), cutoff 256, "
        "CPU fp32, 1 thread; best of",
        a.repeats,
    )
    best = {}
    variants = (
        ("plain torch loop", run_plain),
        ("ours, no checkpoints", run_ours_no_checkpoints),
        ("ours (default)", run_ours),
    )
    for name, target in variants:
        runs = [_child(target, args) for _ in range(a.repeats)]
        r = max(runs, key=lambda x: x["tokens"] / x["seconds"])
        r["tok_s"] = r["tokens"] / r["seconds"]
        best[name] = r
        print(
            f"{name:22s} {r['steps']:3d} steps  {r['tokens']:7d} tokens  {r['seconds']:7.2f} s  "
            f"{r['tok_s']:9.0f} tokens/s  peak RSS {r['peak_rss_mib']:7.1f} MiB  final loss {r['final_loss']:.3f}"
        )
    plain = best["plain torch loop"]
    for name in ("ours, no checkpoints", "ours (default)"):
        ours = best[name]
        print(
            f"{name} / plain: throughput {ours['tok_s'] / plain['tok_s']:.2f}x, "
            f"peak memory {ours['peak_rss_mib'] / plain['peak_rss_mib']:.2f}x"
        )


if __name__ == "__main__":
    main()
