"""Throughput of the openai: backend against the fake server with a fixed per-call latency.

For each concurrency c, N requests that each take LATENCY seconds server-side ideally finish in
N * LATENCY / c seconds; the script prints wall time, requests/s and the ratio to that ideal
(1.00 = perfect overlap; target <= 1.2 at c = 64). Concurrency 1 is the sequential baseline,
measured in the same process.

    PYTHONPATH=src python bench/api_throughput.py                 # 900 requests, c = 1, 16, 64
    PYTHONPATH=src python bench/api_throughput.py --n 200 --concurrency 1,64
    PYTHONPATH=src python bench/api_throughput.py --concurrency 64 --transport aiohttp,httpx --repeats 5

`--transport` picks the HTTP client under the openai SDK (aiohttp, the default when installed, or the
SDK's httpx client); with several, each concurrency level runs them alternately `--repeats` times and
prints the median, so the comparison is not skewed by whatever else the machine does at the time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator

from medsafetybench.models import ChatRequest
from medsafetybench.models.openai_backend import OpenAIChatModel
from medsafetybench.testing import FakeOpenAIServer, echo_responder


async def _run(base_url: str, n: int, concurrency: int, transport: str) -> tuple[float, float, int]:
    model = OpenAIChatModel("fake-model", base_url=base_url, concurrency=concurrency, timeout=30, transport=transport)
    requests = [ChatRequest.simple(f"benchmark request {i}") for i in range(n)]
    try:
        await model.generate(requests[: min(n, concurrency)])  # warm up connections
        t0, cpu0 = time.perf_counter(), time.process_time()
        results = await model.generate(requests)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await model.aclose()
    return wall, cpu, sum(c.ok for c in results)


def _serve(latency: float, conn) -> None:
    with FakeOpenAIServer(echo_responder, latency=latency) as srv:
        conn.send(srv.base_url)
        while conn.recv() == "cpu":  # anything else means stop
            conn.send(time.process_time())


@contextlib.contextmanager
def _server(latency: float, in_process: bool) -> Iterator[tuple[str, Callable[[], float]]]:
    """The fake server, by default in its own process (as a real API would be), so its HTTP
    parsing does not compete with the client for this interpreter's GIL."""
    if in_process:
        with FakeOpenAIServer(echo_responder, latency=latency) as srv:
            yield srv.base_url, lambda: float("nan")  # shares this process's CPU clock
        return
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(latency, child), daemon=True)
    proc.start()
    try:
        url = parent.recv()

        def server_cpu() -> float:
            parent.send("cpu")
            return parent.recv()

        yield url, server_cpu
    finally:
        parent.send("stop")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=900, help="requests per concurrency level (default 900)")
    ap.add_argument("--latency", type=float, default=0.1, help="server-side seconds per call (default 0.1)")
    ap.add_argument("--concurrency", default="1,16,64", help="comma-separated levels (default 1,16,64)")
    ap.add_argument("--transport", default="auto", help="comma-separated: auto, aiohttp, httpx (default auto)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per level and transport; the median is shown")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run the fake server on threads in this process instead of a child process",
    )
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    transports = [t.strip() for t in args.transport.split(",") if t.strip()]
    os.environ.pop("OPENAI_API_KEY", None)

    where = "this process" if args.in_process else "a child process"
    print(
        f"{args.n} requests, {args.latency * 1000:.0f} ms server latency each, server in {where}, "
        f"median of {args.repeats} run(s)"
    )
    print(
        f"{'concurrency':>11} {'transport':>9} {'wall s':>8} {'req/s':>8} {'ideal s':>8} {'ratio':>6} {'ok':>5} "
        f"{'cpu ms/req client':>17} {'server':>6}"
    )
    with _server(args.latency, args.in_process) as (base_url, server_cpu):
        base: tuple[int, float] | None = None
        for c in levels:
            runs: dict[str, list[tuple[float, float, int, float]]] = {t: [] for t in transports}
            for _ in range(max(1, args.repeats)):
                for t in transports:  # alternate, so slow spells of a shared machine hit every transport
                    scpu0 = server_cpu()
                    wall, cpu, ok = asyncio.run(_run(base_url, args.n, c, t))
                    runs[t].append((wall, cpu, ok, (server_cpu() - scpu0) / (args.n + min(args.n, c))))
            ideal = args.n * args.latency / c
            for t in transports:
                wall, cpu, ok, scpu = sorted(runs[t])[len(runs[t]) // 2]
                rps = args.n / wall
                name = OpenAIChatModel("m", base_url=base_url, transport=t).transport
                print(
                    f"{c:>11} {name:>9} {wall:>8.2f} {rps:>8.1f} {ideal:>8.2f} {wall / ideal:>6.2f} {ok:>5} "
                    f"{1000 * cpu / args.n:>17.2f} {1000 * scpu:>6.2f}"
                    + (f"   ratios: {', '.join(f'{r[0] / ideal:.2f}' for r in runs[t])}" if args.repeats > 1 else "")
                )
                if t == transports[0]:
                    if base is None:
                        base = (c, rps)
                    else:
                        print(f"{'':>11} speed-up over c={base[0]}: {rps / base[1]:.1f}x (ideal {c / base[0]:.0f}x)")
    print(
        f"ratio = wall / ideal; {os.cpu_count()} CPUs here. At high concurrency the client's CPU per request "
        "bounds the wall time from below at n x cpu."
    )


if __name__ == "__main__":
    main()
