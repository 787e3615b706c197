"""Client CPU per request of the HTTP clients the openai: backend could use, against the same server.

The decision behind the backend's transport (docs/models.md): N requests at concurrency C against the
fake server (in its own process, LATENCY seconds per call), each client driven the same way (one task
per request under a semaphore), alternating clients `--repeats` times and printing the median wall
ratio to the ideal (N x LATENCY / C) and client CPU per request:

- sdk-httpx: the openai SDK over its default httpx client (pool sized to C), JSON-parsed replies;
- sdk-aiohttp: the SDK over its `DefaultAioHttpClient` (what the backend uses), JSON-parsed replies;
- raw-httpx: httpx without the SDK (the alternative the SDK was measured against);
- raw-aiohttp: aiohttp without the SDK (the floor: least client work per request).

With `--http2` (needs `pip install h2 hypercorn`), the server is hypercorn speaking HTTP/1.1 and h2c,
and sdk-httpx is also run over HTTP/2 (prior knowledge).

    PYTHONPATH=src python bench/api_clients.py --repeats 5
    PYTHONPATH=src python bench/api_clients.py --http2 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai

from medsafetybench.models.openai_http import sdk_httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_throughput import _server  # noqa: E402

httpx = sdk_httpx()


def _body(i: int) -> dict[str, Any]:
    return {
        "model": "fake-model",
        "messages": [{"role": "user", "content": f"benchmark request {i}"}],
        "temperature": 0.0,
        "max_tokens": 512,
    }


def _clients(url: str, c: int, http2: bool) -> dict[str, tuple[Callable[[], Any], Callable, Callable]]:
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)

    async def sdk_send(cl: Any, body: dict) -> Any:
        r = await cl.post("/chat/completions", body=body, cast_to=httpx.Response)
        return json.loads(r.content)

    async def sdk_close(cl: Any) -> None:
        await cl.close()

    async def raw_httpx_send(cl: Any, body: dict) -> Any:
        r = await cl.post("/chat/completions", json=body)
        return json.loads(r.content)

    async def raw_httpx_close(cl: Any) -> None:
        await cl.aclose()

    async def aio_send(cl: aiohttp.ClientSession, body: dict) -> Any:
        async with cl.post(url + "/chat/completions", json=body) as r:
            return json.loads(await r.read())

    async def aio_close(cl: aiohttp.ClientSession) -> None:
        await cl.close()

    def sdk(http_client: Callable[[], Any]) -> Callable[[], Any]:
        return lambda: openai.AsyncOpenAI(api_key="x", base_url=url, max_retries=0, http_client=http_client())

    out = {
        "sdk-httpx": (sdk(lambda: httpx.AsyncClient(limits=limits, timeout=30)), sdk_send, sdk_close),
        "sdk-aiohttp": (sdk(lambda: openai.DefaultAioHttpClient(limits=limits, timeout=30)), sdk_send, sdk_close),
        "raw-httpx": (
            lambda: httpx.AsyncClient(base_url=url, limits=limits, timeout=30),
            raw_httpx_send,
            raw_httpx_close,
        ),
        "raw-aiohttp": (lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)), aio_send, aio_close),
    }
    if http2:
        out["sdk-httpx-h2c"] = (
            sdk(lambda: httpx.AsyncClient(limits=limits, timeout=30, http1=False, http2=True)),
            sdk_send,
            sdk_close,
        )
    return out


async def _measure(make: Callable[[], Any], send: Callable, close: Callable, n: int, c: int) -> tuple[float, float]:
    client = make()
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> Any:
        async with sem:
            return await send(client, _body(i))

    try:
        await asyncio.gather(*(one(i) for i in range(c)))  # open the connections
        t0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        await close(client)


async def _asgi_app(scope: dict, receive: Callable, send: Callable) -> None:  # pragma: no cover - child process
    if scope["type"] != "http":
        return
    raw = b""
    while True:
        msg = await receive()
        raw += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    req = json.loads(raw)
    await asyncio.sleep(_LATENCY[0])
    out = json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": req["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "echo"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": out})


_LATENCY = [0.1]


def _serve_hypercorn(port: int, latency: float) -> None:  # pragma: no cover - child process
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    _LATENCY[0] = latency
    cfg = Config()
    cfg.bind = [f"127.0.0.1:{port}"]
    cfg.loglevel = "ERROR"
    asyncio.run(serve(_asgi_app, cfg))


@contextlib.contextmanager
def _hypercorn(latency: float) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = mp.get_context("spawn").Process(target=_serve_hypercorn, args=(port, latency), daemon=True)
    proc.start()
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.join(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=900)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--http2", action="store_true", help="hypercorn server (HTTP/1.1 + h2c); needs h2 and hypercorn")
    args = ap.parse_args()
    server = _hypercorn(args.latency) if args.http2 else _server(args.latency, False)
    ideal = args.n * args.latency / args.concurrency
    with server as got:
        url = got if isinstance(got, str) else got[0]
        clients = _clients(url, args.concurrency, args.http2)
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in clients}
        for _ in range(args.repeats):
            for name, (make, send, close) in clients.items():  # alternate: a busy spell hits every client
                runs[name].append(asyncio.run(_measure(make, send, close, args.n, args.concurrency)))
    print(
        f"{args.n} requests, c = {args.concurrency}, {args.latency * 1000:.0f} ms latency, "
        f"{'hypercorn (HTTP/1.1 + h2c)' if args.http2 else 'fake server'}; median of {args.repeats}"
    )
    print(f"{'client':>14} {'ratio':>6} {'cpu ms/req':>10}  ratios")
    base = statistics.median(c for _, c in runs["sdk-httpx"])
    for name, vals in runs.items():
        ratio = statistics.median(w for w, _ in vals) / ideal
        cpu = statistics.median(c for _, c in vals)
        print(
            f"{name:>14} {ratio:>6.2f} {1000 * cpu / args.n:>10.2f}  {', '.join(f'{w / ideal:.2f}' for w, _ in vals)}"
            f"   cpu {cpu / base:.2f}x sdk-httpx"
        )


if __name__ == "__main__":
    main()
