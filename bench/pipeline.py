"""End-to-end throughput of the real service: trade.closed -> delay topic -> webhook.

Starts a LocalKafka (or uses KAFKA_BOOTSTRAP_SERVERS) and a fast aiohttp tracker in
a separate process that answers 200 to every POST and counts them (GET /count). Each
run creates fresh topics, pre-publishes N trades due at once (TRACE_DELAY_MINUTES=0),
then starts `python -m trace_stream.cli run` and waits, with a deadline, until the
tracker has received N posts. Reports per run: trades/s from process start and from
the first to the last post (steady state), peak RSS (VmHWM) and CPU seconds of the
service process, then the median and range per TRACE_MAX_IN_FLIGHT value.

    .venv/bin/python -m bench.pipeline --trades 20000 --runs 3 --in-flight 16,64,256

Loopback only; the broker, tracker and service are stopped when the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import astuple, dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from aiohttp import web

from devenv.broker import LocalKafka
from tests.support import ROOT, env_for, make_settings, publish, trade_event


def _serve(conn: Connection) -> None:
    """The tracker: count POSTs, distinct Idempotency-Keys, first and last arrival."""
    keys: set[str] = set()
    stats = {"count": 0, "first": 0.0, "last": 0.0}

    async def post(request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()  # system-wide clock: comparable with the parent's
        stats["first"] = stats["first"] or now
        stats["last"] = now
        stats["count"] += 1
        keys.add(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"ok": True})

    async def count(_: web.Request) -> web.Response:
        return web.json_response({**stats, "unique": len(keys)})

    async def reset(_: web.Request) -> web.Response:
        keys.clear()
        stats.update(count=0, first=0.0, last=0.0)
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", post)
        app.router.add_get("/count", count)
        app.router.add_delete("/count", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await runner.cleanup()

    asyncio.run(main())


def _call(url: str, method: str = "GET") -> dict[str, float]:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:  # noqa: S310 (loopback)
        return dict(json.load(r))


def _proc_usage(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, user+system CPU seconds) of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return hwm_kb / 1024, ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    total: float  # trades/s, service start -> last post
    steady: float  # trades/s, first post -> last post
    startup: float  # seconds, service start -> first post
    rss_mib: float
    cpu_s: float
    duplicates: int


def run_once(
    bootstrap: str, tracker: str, trades: int, in_flight: int, args: argparse.Namespace
) -> Result:
    settings = make_settings(bootstrap, trace_delay_minutes=0, trace_topic_partitions=6)
    publish(settings, *(trade_event(f"bench-{i}") for i in range(trades)))
    _call(f"{tracker}/count", "DELETE")
    env = env_for(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker}/hook",
        TRACE_MAX_IN_FLIGHT=str(in_flight),
        LOG_FORMAT="json",
        LOG_LEVEL=args.log_level,
    )
    log = Path(tempfile.gettempdir()) / f"bench-pipeline-{settings.trace_group_id}.log"
    with log.open("wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            deadline = start + args.timeout
            while (seen := _call(f"{tracker}/count"))["count"] < trades:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{seen['count']}/{trades} posts by the deadline; see {log}")
                time.sleep(0.05)
            rss, cpu = _proc_usage(proc.pid)
            proc.send_signal(signal.SIGTERM)
            if proc.wait(30) != 0:
                raise RuntimeError(f"service exited {proc.returncode}; see {log}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log.unlink()
    first, last = seen["first"], seen["last"]
    return Result(
        total=trades / (last - start),
        steady=(trades - 1) / (last - first),
        startup=first - start,
        rss_mib=rss,
        cpu_s=cpu,
        duplicates=int(seen["count"] - seen["unique"]),
    )


def _line(label: str, r: Result, trades: int) -> str:
    return (
        f"{label:18} {r.steady:7.0f} trades/s steady  {r.total:7.0f} overall  "
        f"startup {r.startup:5.2f} s  peak RSS {r.rss_mib:5.0f} MiB  "
        f"CPU {r.cpu_s / trades * 1000:5.3f} s/1000  dup {r.duplicates}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trades", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", default="64", help="comma list of TRACE_MAX_IN_FLIGHT")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of one run, s")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the service")
    args = parser.parse_args()
    in_flight = [int(n) for n in args.in_flight.split(",")]
    broker = None if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else LocalKafka()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        bootstrap = broker.start() if broker else os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        tracker = f"http://127.0.0.1:{parent.recv()}"
        print(
            f"{args.trades} trades x {args.runs} runs, in-flight {in_flight}, {os.cpu_count()} CPUs"
        )
        run_once(bootstrap, tracker, 500, in_flight[0], args)  # warm the broker up
        results: dict[int, list[Result]] = {n: [] for n in in_flight}
        for run in range(args.runs):
            shift = run % len(in_flight)  # rotate the order so drift favours none
            for n in in_flight[shift:] + in_flight[:shift]:
                results[n].append(run_once(bootstrap, tracker, args.trades, n, args))
                print(
                    _line(f"run {run + 1} in-flight {n}", results[n][-1], args.trades), flush=True
                )
        print("median over runs:")
        for n, rs in results.items():
            steady = [r.steady for r in rs]
            med = Result(*(statistics.median(col) for col in zip(*map(astuple, rs), strict=True)))
            print(_line(f"  in-flight {n}", med, args.trades))
            print(f"{'':20} steady range {min(steady):.0f} - {max(steady):.0f} trades/s")
    finally:
        parent.send("stop")
        server.join(5)
        if server.is_alive():
            server.terminate()
        if broker:
            broker.stop()


if __name__ == "__main__":
    main()
