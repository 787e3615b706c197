"""The batch path's own client cost for 36,000 requests, against the live path's, on the fake server.

Batch: one `BatchChatModel.generate` over N requests (default 36,000: the paper's study, 1,800 requests x
20 model/judge passes) against the fake server's Batch API in its own process, every result stored as
the stages store it (`Store.put_response` in `on_result`). Its client CPU time covers the store writes
(batch + request rows, results, done marks), building the JSONL, the SDK's upload/poll/download and
parsing the result lines; the polls' sleeps are not CPU. A breakdown times the pieces alone on the same
requests: `prepare` (batch rows), `jsonl` (request lines), `parse` (output lines -> completions), `store`
(results + done marks).

Live: `OpenAIChatModel.generate` (the default aiohttp transport, concurrency 64) over a smaller N
(default 3,000) against the same kind of server, results stored the same way; its client CPU per request
is scaled to N. The ratio batch / live is the batch path's cost in client CPU relative to asking live.
The openai SDK is imported before anything is timed (seconds once per process, not per request).

    PYTHONPATH=src python bench/batch_overhead.py                  # 36,000 batched, 3,000 live (scaled)
    PYTHONPATH=src python bench/batch_overhead.py --n 5000 --live-n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from medsafetybench.batch.openai_batches import parse_line
from medsafetybench.batch.runner import BatchChatModel, BatchOptions
from medsafetybench.batch.store import BatchStore
from medsafetybench.models import ChatRequest
from medsafetybench.models.openai_backend import OpenAIChatModel
from medsafetybench.store import Store
from medsafetybench.testing import FakeOpenAIServer, echo_responder


def _serve(conn) -> None:  # type: ignore[no-untyped-def]
    from medsafetybench.testing.fake_batches import FakeBatches

    with FakeOpenAIServer(echo_responder) as srv:
        FakeBatches(srv)
        conn.send(srv.base_url)
        conn.recv()


def _requests(n: int, tag: str) -> list[ChatRequest]:
    return [
        ChatRequest.simple(
            f"{tag} benchmark request {i}: how should a clinician respond?", system="You are a helpful assistant."
        )
        for i in range(n)
    ]


async def _timed(model, requests, store: Store) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    stored = 0

    def on_result(i: int, c) -> None:  # type: ignore[no-untyped-def]
        nonlocal stored
        if c.ok:
            stored += store.put_response(requests[i].cache_key(model.identity), model.identity, requests[i], c)

    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        await model.generate(requests, on_result=on_result)
    finally:
        await model.aclose()
    return time.perf_counter() - t0, time.process_time() - cpu0, stored


def breakdown(store: Store, model: BatchChatModel, requests: list[ChatRequest]) -> dict[str, float]:
    """CPU seconds of each piece of the batch path alone, on `requests` (a fresh identity, nothing sent)."""
    out = {}
    keyed = [(r.cache_key(model.identity + "#bd"), r) for r in requests]
    t = time.process_time()
    local = BatchStore(store).prepare("openai", model.identity + "#bd", keyed)
    out["prepare"] = time.process_time() - t
    t = time.process_time()
    lines = [model.provider.line(k, r) for k, r in keyed]
    _ = b"\n".join(lines)
    out["jsonl"] = time.process_time() - t
    bodies = [
        json.dumps(
            {
                "id": f"r{i}",
                "custom_id": k,
                "error": None,
                "response": {
                    "status_code": 200,
                    "body": {
                        "id": "c",
                        "object": "chat.completion",
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "echo: " + r.messages[-1].content},
                            }
                        ],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 12},
                    },
                },
            }
        ).encode()
        for i, (k, r) in enumerate(keyed)
    ]
    t = time.process_time()
    parsed = [parse_line(b, "batch_x") for b in bodies]
    out["parse"] = time.process_time() - t
    t = time.process_time()
    for (k, r), p in zip(keyed, parsed, strict=True):
        assert p is not None and p.completion is not None
        store.put_response(k, model.identity + "#bd", r, p.completion)
    BatchStore(store).mark(local, [k for k, _ in keyed], "done")
    out["store"] = time.process_time() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=36_000, help="requests through the batch path")
    ap.add_argument("--live-n", type=int, default=3_000, help="requests through the live path (scaled to --n)")
    ap.add_argument("--concurrency", type=int, default=64, help="live concurrency")
    args = ap.parse_args()
    import openai  # noqa: F401 - the SDK's import (seconds, once per process) is not per-request cost

    parent, child = mp.Pipe()
    proc = mp.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    base_url = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as d:
            with Store(Path(d) / "bench.db") as store:
                live = OpenAIChatModel("live-model", base_url=base_url, concurrency=args.concurrency, timeout=60)
                asyncio.run(
                    _timed(
                        OpenAIChatModel("warm", base_url=base_url, concurrency=args.concurrency),
                        _requests(200, "warm"),
                        store,
                    )
                )
                lw, lc, ls = asyncio.run(_timed(live, _requests(args.live_n, "live"), store))
                batch = BatchChatModel(
                    OpenAIChatModel("batch-model", base_url=base_url, timeout=600),
                    store,
                    BatchOptions(poll_interval=0.5),
                )
                reqs = _requests(args.n, "batch")
                bw, bc, bs = asyncio.run(_timed(batch, reqs, store))
                parts = breakdown(store, BatchChatModel(OpenAIChatModel("bd", base_url=base_url), store), reqs)
    finally:
        parent.send("stop")
        proc.join(timeout=10)
    per_live = lc / args.live_n
    scaled = per_live * args.n
    print(
        f"live path: {args.live_n:,} requests, concurrency {args.concurrency}: {lw:.2f} s wall, "
        f"{lc:.2f} s client CPU ({per_live * 1e6:.0f} us/request; {ls:,} stored)"
    )
    print(f"live path scaled to {args.n:,} requests: {scaled:.2f} s client CPU")
    print(
        f"batch path: {args.n:,} requests: {bw:.2f} s wall (incl. the fake server's batch work and 0.5 s polls), "
        f"{bc:.2f} s client CPU ({bc / args.n * 1e6:.0f} us/request; {bs:,} stored)"
    )
    print(
        "batch path pieces alone (client CPU): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())
        + f"; sum {sum(parts.values()):.2f} s"
    )
    print(f"ratio batch / live client CPU: {bc / scaled:.2f} (pieces alone: {sum(parts.values()) / scaled:.2f})")


if __name__ == "__main__":
    main()
