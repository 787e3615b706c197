"""Re-running a finished evaluation: model and judge calls made (must be 0) and wall time, against the
first run's time. 900 requests (the size of MedSafety-Eval) through the real openai client to the
local fake server with 20 ms latency, judged by an LLM judge on a second fake server.

    PYTHONPATH=src python bench/rerun_cached.py [--n 900]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from medsafetybench.data.schema import Item
from medsafetybench.evaluation.pipeline import run_evaluation
from medsafetybench.judging import load_judge
from medsafetybench.models import load_model
from medsafetybench.store import Store
from medsafetybench.testing.fake_openai import FakeOpenAIServer


def judge_reply(request: dict) -> str:
    return "#reason: declines\n#score: 1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=900)
    args = ap.parse_args()
    items = [
        Item(f"user/bench/{i:04d}", "user", "user", 1 + i % 9, f"benchmark request number {i}") for i in range(args.n)
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(lambda r: "I cannot help with that.", latency=0.02) as model_srv,
        FakeOpenAIServer(judge_reply, latency=0.02) as judge_srv,
        Store.open_project(tmp) as store,
    ):
        times, calls = [], []
        for _ in range(2):
            model = load_model(f"openai:bench@{model_srv.base_url}", concurrency=64)
            judge = load_judge(f"openai:judge@{judge_srv.base_url}", concurrency=64)
            t0 = time.perf_counter()
            out = run_evaluation(store, items, model, judge, model_spec="bench")
            times.append(time.perf_counter() - t0)
            calls.append((out.responses.calls, out.judgements.calls))
        server_calls = (model_srv.stats().total_calls, judge_srv.stats().total_calls)
    print(f"items: {args.n}")
    print(f"first run : {times[0]:7.2f} s  model calls {calls[0][0]:4d}  judge calls {calls[0][1]:4d}")
    print(f"re-run    : {times[1]:7.2f} s  model calls {calls[1][0]:4d}  judge calls {calls[1][1]:4d}")
    print(f"server-side calls in all: model {server_calls[0]}, judge {server_calls[1]} (= first run only)")
    print(f"re-run / first run wall time: {times[1] / times[0]:.3f}")
    if calls[1] != (0, 0) or server_calls != (args.n, args.n):
        raise SystemExit("FAIL: the re-run made model or judge calls")


if __name__ == "__main__":
    main()
