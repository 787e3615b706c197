"""A whole evaluation over HTTP, streamed (judging overlaps responding) vs the stages one after the other.

N items are answered by a fake model server and judged by a fake judge server, each adding LATENCY
seconds per call, at concurrency C for both. One stage ideally takes N x LATENCY / C seconds; streamed,
the whole evaluation ideally takes about that (max of the stages), back to back twice that. The script
runs both ways in one process (fresh stores, servers in child processes like real APIs) and prints wall
time from the first model request to the last stored judgement, and the ratios.

    PYTHONPATH=src python bench/eval_streaming.py               # 900 items, 100 ms, c = 64
    PYTHONPATH=src python bench/eval_streaming.py --n 300 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import tempfile
import time

from medsafetybench.data.schema import Item
from medsafetybench.evaluation.pipeline import EvalSettings, judge_stage, plan_run, respond_stage
from medsafetybench.evaluation.stages import run_stages
from medsafetybench.judging import load_judge
from medsafetybench.models import load_model
from medsafetybench.store import Store


def _judge_reply(request: dict) -> str:
    return "#reason: bench\n#score: 1"


def _model_reply(request: dict) -> str:
    return "I cannot help with that."


def _serve(kind: str, latency: float, conn) -> None:
    from medsafetybench.testing import FakeOpenAIServer

    with FakeOpenAIServer(_judge_reply if kind == "judge" else _model_reply, latency=latency) as srv:
        conn.send(srv.base_url)
        conn.recv()


def _start(kind: str, latency: float):
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(kind, latency, child), daemon=True)
    proc.start()
    return proc, parent, parent.recv()


async def _once(streamed: bool, items: list[Item], model_url: str, judge_url: str, c: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, Store.open_project(tmp) as store:
        model = load_model(f"openai:bench-model@{model_url}", concurrency=c, timeout=60)
        judge = load_judge(f"openai:bench-judge@{judge_url}", concurrency=c, timeout=60)
        try:
            await model.generate([EvalSettings().request_for(items[0])][:1])  # warm connections, not stored
            run_id = plan_run(
                store,
                items,
                model_spec="bench",
                model_identity=model.identity,
                judge_identity=judge.identity,
                settings=EvalSettings(),
            )
            t0 = time.perf_counter()
            if streamed:
                out = await run_stages(store, run_id, model, [judge])
                stored = out.judgements[judge.identity].stored
            else:
                await respond_stage(store, run_id, model)
                stored = (await judge_stage(store, run_id, judge)).stored
            wall = time.perf_counter() - t0
            assert stored == len(items), f"only {stored} of {len(items)} judged"
            return wall
        finally:
            await model.aclose()
            await judge.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=900)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    items = [
        Item(
            id=f"bench/{i:04d}",
            split="bench",
            source="bench",
            principle=1 + i % 9,
            request=f"benchmark request number {i}",
        )
        for i in range(args.n)
    ]
    servers = [_start("model", args.latency), _start("judge", args.latency)]
    try:
        stage = args.n * args.latency / args.concurrency
        print(
            f"{args.n} items, {args.latency * 1000:.0f} ms per call, concurrency {args.concurrency}; "
            f"one stage ideally {stage:.2f} s; {os.cpu_count()} CPUs"
        )
        best: dict[bool, float] = {}
        for _ in range(args.repeats):
            for streamed in (False, True):
                wall = asyncio.run(_once(streamed, items, servers[0][2], servers[1][2], args.concurrency))
                best[streamed] = min(best.get(streamed, wall), wall)
        for streamed in (False, True):
            name = "streamed" if streamed else "back to back"
            print(f"{name:>13}: {best[streamed]:6.2f} s = {best[streamed] / stage:4.2f}x one stage")
        print(f"streamed is {best[False] / best[True]:.2f}x faster than back to back (best of {args.repeats})")
    finally:
        for proc, conn, _ in servers:
            conn.send("stop")
            proc.join(timeout=10)


if __name__ == "__main__":
    main()
