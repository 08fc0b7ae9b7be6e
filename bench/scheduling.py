"""Scheduling: how late each trade is posted after its due time, when trades arrive out
of close order at a steady rate.

Publishes trades at `--rate` per second for `--seconds`, paced on the monotonic clock,
each with `closed_at = publish time + uniform(-D, +D)` (D = `--disorder`, drawn from
`--seed`), to the real service (`python -m trace_stream.cli run`, webhook adapter,
LOG_LEVEL=WARNING) started from `--root` (default: this checkout; point it at another
checkout to compare versions). The delay is D + `--margin` seconds, so every trade
reaches the service before it is due and lateness is the service's alone. A fast
aiohttp tracker in another process stamps each post with the wall clock on arrival.

Reports per run: lateness (arrival of a trade's first post - due) min, p50, p99 and
max; early posts (any post before its due time, no tolerance); duplicates (posts
beyond one per trade) and trades whose posts carried different Idempotency-Keys;
missing trades at the deadline (last due time + `--grace`); the service's peak RSS
(VmHWM); with `--runs N`, the median of each figure. Due time = `closed_at` truncated
to milliseconds (as Avro carries it) + delay.

    .venv/bin/python -m bench.scheduling --rate 200 --seconds 60 --disorder 60 [--json]

Uses a LocalKafka broker unless KAFKA_BOOTSTRAP_SERVERS is set; fresh topics per run.
Loopback only; the service, tracker and broker are stopped when the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import ROOT, broker, get_json, spawned_server, stop_process, usage, wait_ready
from devenv.broker import free_port
from devenv.trades import fresh_settings, service_env, trade_event
from trace_stream import codec
from trace_stream.core.messages import OutRecord
from trace_stream.kafka import Producer
from trace_stream.settings import Settings

Post = tuple[str, float, str]  # trade id, time.time() on arrival, Idempotency-Key


def _serve(conn: Connection) -> None:
    """The tracker: answer 200 to every POST and keep a Post for it; GET
    /posts?since=N returns the posts from the N-th on. Runs until `conn` says stop."""
    posts: list[Post] = []

    async def post(request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        posts.append((body["trade_id"], at, request.headers.get("Idempotency-Key", "")))
        return web.json_response({"ok": True})

    async def posted(request: web.Request) -> web.Response:
        return web.json_response(posts[int(request.query.get("since", 0)) :])

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", post)
        app.router.add_get("/posts", posted)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


@contextmanager
def _tracker() -> Iterator[str]:
    """The tracker in a process of its own; yields its base URL."""
    with spawned_server(_serve) as (url, _):
        yield url


def _start_service(
    settings: Settings, tracker: str, root: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = service_env(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker}/hook",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
        PYTHONPATH=str(root),
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )


def _publish(settings: Settings, args: argparse.Namespace, delay: float) -> dict[str, float]:
    """Publish rate x seconds trades, the i-th at start + i/rate on the monotonic clock
    (late ones do not push the rest back); return each trade's due time, epoch seconds."""
    rng = random.Random(args.seed)  # noqa: S311 (not for security)
    producer = Producer(settings.kafka_config())
    due: dict[str, float] = {}
    start = time.monotonic()
    for i in range(round(args.rate * args.seconds)):
        ahead = start + i / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        offset = timedelta(seconds=rng.uniform(-args.disorder, args.disorder))
        closed = datetime.now(UTC) + offset
        closed = closed.replace(microsecond=closed.microsecond // 1000 * 1000)  # Avro: ms
        trade_id = f"{settings.trace_group_id}-{i:06d}"
        value = codec.encode("trade_closed", trade_event(trade_id, closed))
        producer.produce(OutRecord(settings.trace_input_topic, value, key=trade_id.encode()))
        due[trade_id] = closed.timestamp() + delay
    producer.flush()
    return due


def _collect(
    tracker: str, due: dict[str, float], proc: subprocess.Popen[bytes], deadline: float
) -> list[Post]:
    """This run's posts, once every trade in `due` has one, the service has exited, or
    the wall clock passes `deadline`, whichever comes first."""
    posts: list[Post] = []
    cursor = 0
    while True:
        new = get_json(f"{tracker}/posts?since={cursor}")
        cursor += len(new)
        posts += [(t, at, key) for t, at, key in new if t in due]
        done = len({t for t, _, _ in posts}) == len(due)
        if done or proc.poll() is not None or time.time() > deadline:
            return posts
        time.sleep(0.5)


def _rank(values: list[float], q: float) -> float | None:
    """The q-quantile of sorted `values` by nearest rank; None if there are none."""
    return values[max(0, math.ceil(q * len(values)) - 1)] if values else None


def _report(due: dict[str, float], posts: list[Post]) -> dict[str, Any]:
    first: dict[str, float] = {}
    keys: dict[str, set[str]] = {}
    for trade_id, at, key in posts:
        first[trade_id] = min(at, first.get(trade_id, at))
        keys.setdefault(trade_id, set()).add(key)
    late = sorted(first[t] - due[t] for t in first)
    return {
        "trades": len(due),
        "posted": len(first),
        "missing": len(due) - len(first),
        "duplicates": len(posts) - len(first),
        "keys_differ": sum(1 for k in keys.values() if len(k) > 1),
        "early": sum(1 for t, at, _ in posts if at < due[t]),
        "lateness_min_s": _rank(late, 0),
        "lateness_p50_s": _rank(late, 0.5),
        "lateness_p99_s": _rank(late, 0.99),
        "lateness_max_s": _rank(late, 1),
    }


def run_once(bootstrap: str, tracker: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run on fresh topics with a fresh service process; its figures."""
    began = time.monotonic()
    delay = args.disorder + args.margin
    settings = fresh_settings(
        bootstrap,
        trace_delay_minutes=delay / 60,
        trace_topic_partitions=args.partitions,
        metrics_port=free_port(),
    )
    log = Path(tempfile.gettempdir()) / f"bench-scheduling-{settings.trace_group_id}.log"
    proc = _start_service(settings, tracker, Path(args.root).resolve(), log)
    try:
        wait_ready(proc, settings.metrics_port)
        due = _publish(settings, args, delay)
        posts = _collect(tracker, due, proc, deadline=max(due.values()) + args.grace)
        u = usage(proc.pid)
        rss = u.peak_rss_mib if u else None
    finally:
        exit_code = stop_process(proc)
    result = _report(due, posts)
    if exit_code == 0 and result["missing"] == 0:
        log.unlink()
    return {
        **result,
        "peak_rss_mib": rss,
        "exit_code": exit_code,
        "took_s": time.monotonic() - began,
        "log": str(log) if log.exists() else None,
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each numeric figure over the runs (None where no run has one)."""
    out: dict[str, Any] = {}
    for name, value in runs[0].items():
        if name != "log" and not isinstance(value, str):
            values = [r[name] for r in runs if r[name] is not None]
            out[name] = statistics.median(values) if values else None
    return out


COLUMNS = [  # (heading, figure, format)
    ("trades", "trades", "{:.0f}"),
    ("missing", "missing", "{:.0f}"),
    ("dup", "duplicates", "{:.0f}"),
    ("early", "early", "{:.0f}"),
    ("min s", "lateness_min_s", "{:.3f}"),
    ("p50 s", "lateness_p50_s", "{:.3f}"),
    ("p99 s", "lateness_p99_s", "{:.3f}"),
    ("max s", "lateness_max_s", "{:.3f}"),
    ("RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("exit", "exit_code", "{:.0f}"),
    ("took s", "took_s", "{:.0f}"),
]


def _row(label: str, figures: dict[str, Any]) -> str:
    cells = [
        "-" if figures[name] is None else fmt.format(figures[name]) for _, name, fmt in COLUMNS
    ]
    return f"{label:8}" + "".join(f"{c:>9}" for c in cells)


def _table(args: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    lines = [
        f"{args.rate:g} trades/s for {args.seconds:g} s, closed_at ±{args.disorder:g} s, "
        f"delay {args.disorder + args.margin:g} s, {args.partitions} partitions, "
        f"seed {args.seed}, service from {Path(args.root).resolve()}",
        f"{'':8}" + "".join(f"{heading:>9}" for heading, _, _ in COLUMNS),
        *(_row(f"run {i + 1}", r) for i, r in enumerate(runs)),
    ]
    if len(runs) > 1:
        lines.append(_row("median", _median(runs)))
    lines += [f"service log kept: {r['log']}" for r in runs if r["log"]]
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=200, help="trades per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to publish")
    parser.add_argument(
        "--disorder", type=float, default=60, help="closed_at spread, ± s (below the 5 m skew)"
    )
    parser.add_argument("--margin", type=float, default=15, help="delay beyond the disorder, s")
    parser.add_argument("--partitions", type=int, default=6, help="of every topic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--grace", type=float, default=60, help="wait past the last due time, s, then stop"
    )
    parser.add_argument("--root", default=str(ROOT), help="checkout whose service to run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.runs < 1 or args.margin <= 0:
        parser.error("--rate, --seconds, --margin and --runs must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    runs: list[dict[str, Any]] = []
    with broker() as bootstrap, _tracker() as tracker:
        for i in range(args.runs):
            runs.append(run_once(bootstrap, tracker, args))
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    if args.json:
        median = _median(runs) if len(runs) > 1 else None
        print(json.dumps({"parameters": vars(args), "runs": runs, "median": median}, indent=2))
    else:
        print(_table(args, runs))


if __name__ == "__main__":
    main()
