"""Scheduling: how late each trade is posted after its due time, when trades arrive out
of close order at a steady rate.

Publishes trades at `--rate` per second for `--seconds`, each with
`closed_at = publish time + uniform(-D, +D)` (D = `--disorder`), to the real service
(`python -m trace_stream.cli run`, webhook adapter, LOG_LEVEL=WARNING) started from
`--root` (default: this checkout; point it at another checkout to compare versions).
The delay is D + `--margin` seconds, so every trade arrives before it is due and
lateness measures the service alone. A fast aiohttp tracker in another process stamps
each post with the wall clock on arrival. Reports, from the first accepted post of
each trade: lateness (arrival - due) p50, p99, max; early posts (arrival < due, no
tolerance) and the smallest margin; duplicates; missing; the service's peak RSS.

    .venv/bin/python -m bench.scheduling --rate 200 --seconds 60 --disorder 60 [--json]

Loopback only; the broker, tracker and service are stopped when the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from devenv.broker import LocalKafka, free_port
from tests.support import ROOT, env_for, make_settings, trade_event
from trace_stream import codec
from trace_stream.kafka import OutRecord, Producer
from trace_stream.settings import Settings


def _serve(conn: Connection) -> None:
    """The tracker: answer 200 and keep (trade id, arrival time, idempotency key)."""
    posts: list[tuple[str, float, str]] = []

    async def post(request: web.Request) -> web.Response:
        body = await request.json()
        posts.append((body["trade_id"], time.time(), request.headers.get("Idempotency-Key", "")))
        return web.json_response({"ok": True})

    async def posted(_: web.Request) -> web.Response:
        return web.json_response(posts)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", post)
        app.router.add_get("/posts", posted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await runner.cleanup()

    asyncio.run(main())


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line) / 1024


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback)
        return json.load(r)


def _start_service(
    settings: Settings, tracker: str, root: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = env_for(
        settings, WEBHOOK_ENDPOINT=f"{tracker}/hook", LOG_LEVEL="WARNING", LOG_FORMAT="json"
    )
    env["PYTHONPATH"] = str(root)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/readyz", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the service did not get ready; see {log}") from None
            time.sleep(0.2)


def _publish(settings: Settings, args: argparse.Namespace, delay: timedelta) -> dict[str, float]:
    """Publish at a steady rate; return each trade's due time (epoch seconds)."""
    rng = random.Random(args.seed)  # noqa: S311 (not for security)
    producer = Producer(settings.kafka_config())
    due: dict[str, float] = {}
    start = time.monotonic()
    for i in range(args.rate * args.seconds):
        while (ahead := start + i / args.rate - time.monotonic()) > 0:
            time.sleep(min(ahead, 0.01))
        closed = datetime.now(UTC) + timedelta(seconds=rng.uniform(-args.disorder, args.disorder))
        closed = closed.replace(microsecond=closed.microsecond // 1000 * 1000)  # Avro: ms
        event = trade_event(f"{settings.trace_group_id}-{i:06d}", closed_at=closed)
        due[event["trade_id"]] = (closed + delay).timestamp()
        producer.produce(OutRecord(settings.trace_input_topic, codec.encode("trade_closed", event)))
    producer.flush()
    return due


def _report(due: dict[str, float], posts: list[list[Any]], rss: float) -> dict[str, Any]:
    first: dict[str, float] = {}
    for trade_id, at, _ in posts:
        first.setdefault(trade_id, at)
    late = sorted(first[t] - due[t] for t in first if t in due)
    q = statistics.quantiles(late, n=100) if len(late) > 1 else late * 99
    return {
        "trades": len(due),
        "posted": len(first),
        "missing": len(due) - len(first),
        "duplicates": len(posts) - len(first),
        "early": sum(1 for x in late if x < 0),
        "smallest_margin_s": round(min(late), 4) if late else None,
        "lateness_p50_s": round(q[49], 4),
        "lateness_p99_s": round(q[98], 4),
        "lateness_max_s": round(max(late), 4),
        "peak_rss_mib": round(rss, 1),
    }


def run_once(bootstrap: str, tracker: str, args: argparse.Namespace) -> dict[str, Any]:
    delay = timedelta(seconds=args.disorder + args.margin)
    settings = make_settings(
        bootstrap,
        trace_delay_minutes=delay.total_seconds() / 60,
        trace_topic_partitions=6,
        metrics_port=free_port(),
    )
    log = Path(tempfile.gettempdir()) / f"bench-scheduling-{settings.trace_group_id}.log"
    proc = _start_service(settings, tracker, Path(args.root).resolve(), log)
    try:
        due = _publish(settings, args, delay)
        deadline = max(due.values()) + 60
        while True:
            posts = [p for p in _get(f"{tracker}/posts") if p[0] in due]
            done = len({p[0] for p in posts}) == len(due)
            if done or proc.poll() is not None or time.time() > deadline:
                break
            time.sleep(0.5)
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
    return _report(due, posts, rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=200, help="trades per second")
    parser.add_argument("--seconds", type=int, default=60, help="how long to publish")
    parser.add_argument("--disorder", type=float, default=60, help="closed_at spread, ± s")
    parser.add_argument("--margin", type=float, default=15, help="delay beyond the disorder, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--root", default=str(ROOT), help="checkout whose service to run")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    broker = None if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else LocalKafka()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        bootstrap = broker.start() if broker else os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        tracker = f"http://127.0.0.1:{parent.recv()}"
        results = [run_once(bootstrap, tracker, args) for _ in range(args.runs)]
    finally:
        parent.send("stop")
        server.join(5)
        if server.is_alive():
            server.terminate()
        if broker:
            broker.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.rate}/s for {args.seconds} s, closed_at ±{args.disorder:g} s, root {args.root}")
    for r in results:
        print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
