"""Which httpx transport should the HTTP adapters use? Measure, on loopback.

Starts an aiohttp server in a separate process (pinned to CPU 0 when the machine has
two or more, the client to CPU 1, so they never share a core), then POSTs a 431-byte
JSON body N times at a fixed concurrency through each client:

  httpx          httpx.AsyncClient with its default transport (httpcore + anyio)
  httpx-aiohttp  httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())
  aiohttp        a bare aiohttp.ClientSession: what the hot path's posts use today
  pyreqwest      pyreqwest's async Client (Rust reqwest on its own tokio runtime): the
                 request and response work runs outside the GIL

Besides requests/s and latency, each run reports the client process's CPU (user +
system, all threads: pyreqwest's runtime threads included) per 1,000 requests, and
the share of the run's wall time that CPU makes.

Each run builds a fresh client, warms it up, then measures; the order of clients
rotates between runs so drift (CPU boost, page cache) does not favour one of them.
Prints requests/s and p50/p99 latency per run and the median over runs.

    .venv/bin/pip install httpx-aiohttp   # brings aiohttp
    .venv/bin/python bench/http_transport.py --requests 5000 --runs 5

Loopback only; the server process is stopped when the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport
from pyreqwest.client import ClientBuilder

BODY = json.dumps(
    {
        "trade_id": "7b0e8c1e-4f2a-4d6b-9a53-0c2f1e8d9a71",
        "signal_id": "sig-eurusd-momentum-h1-0042",
        "instrument": "EURUSD",
        "side": "BUY",
        "volume": 1.25,
        "entry_price": 1.08423,
        "exit_price": 1.08761,
        "opened_at": "2025-11-20T08:15:02.123000Z",
        "closed_at": "2025-11-20T14:47:55.908000Z",
        "profit_loss": 422.5,
        "source": "trace-stream benchmark payload, padded to the size of a real trace body",
        "pad": "x" * 50,
    },
    separators=(",", ":"),
).encode()
HEADERS = {"content-type": "application/json", "idempotency-key": "bench"}
Post = Callable[[], Awaitable[None]]


def _serve(conn: Connection) -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": False, "message": "ok"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await runner.cleanup()

    asyncio.run(main())


async def _measure(post: Post, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    todo = iter(range(requests))

    async def worker() -> None:
        for _ in todo:
            start = time.perf_counter()
            await post()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


Result = tuple[float, float, float, float]
"""requests/s, p50 ms, p99 ms, client CPU s per 1,000 requests"""


async def _run(kind: str, url: str, requests: int, concurrency: int) -> Result:
    cpu = 0.0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if kind == "aiohttp":
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency)
        ) as session:

            async def post() -> None:
                async with session.post(url, data=BODY, headers=HEADERS) as r:
                    await r.read()
                    r.raise_for_status()

            await _measure(post, 200, concurrency)
            cpu = time.process_time()
            elapsed, lat = await _measure(post, requests, concurrency)
    elif kind == "pyreqwest":
        builder = ClientBuilder().max_connections(concurrency).follow_redirects(False)
        async with builder.default_cookie_store(False).build() as reqwest:

            async def post() -> None:
                request = reqwest.post(url).body_bytes(BODY).headers(HEADERS).build()
                r = await request.send()
                await r.bytes()
                r.error_for_status()

            await _measure(post, 200, concurrency)
            cpu = time.process_time()
            elapsed, lat = await _measure(post, requests, concurrency)
    else:
        transport = AiohttpTransport(limits=limits) if kind == "httpx-aiohttp" else None
        async with httpx.AsyncClient(limits=limits, transport=transport, timeout=10) as client:

            async def post() -> None:
                (await client.post(url, content=BODY, headers=HEADERS)).raise_for_status()

            await _measure(post, 200, concurrency)
            cpu = time.process_time()
            elapsed, lat = await _measure(post, requests, concurrency)
    cpu = time.process_time() - cpu
    q = statistics.quantiles(lat, n=100)
    return requests / elapsed, q[49] * 1000, q[98] * 1000, cpu * 1000 / requests


def _line(label: str, result: Result) -> str:
    rps, p50, p99, cpu = result
    return f"{label:20} {rps:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU/1k {cpu:6.3f} s"


KINDS = ("httpx", "httpx-aiohttp", "aiohttp", "pyreqwest")


def _compare(url: str, runs: int, requests: int, concurrency: int, kinds: list[str]) -> None:
    results: dict[str, list[Result]] = {k: [] for k in kinds}
    for run in range(runs):
        for kind in kinds[run % len(kinds) :] + kinds[: run % len(kinds)]:
            results[kind].append(asyncio.run(_run(kind, url, requests, concurrency)))
            print(_line(f"run {run + 1} {kind}", results[kind][-1]))
    print("median over runs:")
    for kind, rs in results.items():
        medians = tuple(statistics.median(col) for col in zip(*rs, strict=True))
        print(_line(f"  {kind}", (medians[0], medians[1], medians[2], medians[3])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--clients", default=",".join(KINDS), help="comma-separated, of " + ",".join(KINDS)
    )
    args = parser.parse_args()
    sniffio = importlib.util.find_spec("sniffio") is not None
    print(
        f"body {len(BODY)} B, {args.requests} requests x {args.runs} runs, "
        f"concurrency {args.concurrency}, httpx {httpx.__version__}, "
        f"aiohttp {aiohttp.__version__}, sniffio installed: {sniffio}"
    )
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{parent.recv()}/"
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {1})
        _compare(url, args.runs, args.requests, args.concurrency, args.clients.split(","))
    finally:
        parent.send("stop")
        server.join(5)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
