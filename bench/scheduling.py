"""Scheduling: how late each trade is posted after its due time, when trades arrive out
of close order at a steady rate.

Publishes trades at `--rate` per second for `--seconds`, paced on the monotonic clock,
each with `closed_at = publish time + uniform(-D, +D)` (D = `--disorder`, drawn from
`--seed`), to the real service (`python -m trace_stream.cli run`, webhook adapter,
LOG_LEVEL=WARNING) started from `--root` (default: this checkout; point it at another
checkout to compare versions). The delay is `--delay` seconds, by default D +
`--margin`, so every trade reaches the service before it is due and lateness is the
service's alone. A fast aiohttp tracker in another process stamps each post with the
wall clock on arrival. Named scenarios (`--scenario`) set these for the issue's cases:

- `defaults`: the service's default settings (delay 5 minutes, look-ahead budget),
  500 trades/s for 420 s, closed_at ±60 s: the look-ahead fills to rate x delay and
  stays there for the last minute of publishing (about 14 minutes in all);
- `close-order`: 500 trades/s for 60 s, closed now, due 5 s later;
- `beyond-budget`: the issue's first report, 500 trades/s for 120 s, closed_at ±60 s,
  delay 65 s, with a budget (4 MiB, about 17,000 deliveries) about half of what the
  steady state holds: how late trades get once reading pauses.

Reports per run: lateness (arrival of a trade's first post - due) min, p50, p99 and
max, and the share over 1 s; early posts (any post before its due time, no
tolerance); duplicates (posts beyond one per trade) and trades whose posts carried
different Idempotency-Keys; missing trades at the deadline (last due time +
`--grace`); the service's peak RSS (VmHWM); the most deliveries and bytes its
look-ahead held (its /metrics, every 2 s) against its budget; with `--runs N`, the
median of each figure. Due time = `closed_at` truncated to milliseconds (as Avro
carries it) + delay. `--json PATH` writes every figure and each trade's lateness
there, and the plot of their distribution beside it (`bench.lateness_plot`, PNG).

    .venv/bin/python -m bench.scheduling --rate 200 --seconds 60 --disorder 60
    .venv/bin/python -m bench.scheduling --scenario defaults --json /tmp/defaults.json

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
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import ROOT, broker, get_json, spawned_server, stop_process, usage, wait_ready
from bench.lateness_plot import plot
from devenv.broker import free_port
from devenv.trades import fresh_settings, service_env, trade_event
from trace_stream import codec
from trace_stream.core.messages import OutRecord
from trace_stream.kafka import Producer
from trace_stream.settings import Settings

Post = tuple[str, float, str]  # trade id, time.time() on arrival, Idempotency-Key

DEFAULT_DELAY_S = Settings.model_fields["trace_delay_minutes"].default * 60
DEFAULT_LOOKAHEAD_MIB = Settings.model_fields["trace_lookahead_memory_mib"].default
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {"rate": 500, "seconds": 420, "disorder": 60, "delay": DEFAULT_DELAY_S},
    "close-order": {"rate": 500, "seconds": 60, "disorder": 0, "delay": 5},
    "beyond-budget": {
        "rate": 500,
        "seconds": 120,
        "disorder": 60,
        "delay": 65,
        "lookahead_mib": 4,
    },
}
GAUGES = {  # figure: the webhook deliverer's gauge
    "buffered": "trust_trace_buffered",
    "buffered_bytes": "trust_trace_buffered_bytes",
    "budget_bytes": "trust_trace_buffer_budget_bytes",
}


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


class _Gauges:
    """The largest value of each of GAUGES seen on the service's /metrics, read every
    `every` seconds on a thread of its own until `stop()`."""

    def __init__(self, port: int, every: float = 2.0) -> None:
        self.peak: dict[str, float] = {}
        self._url = f"http://127.0.0.1:{port}/metrics"
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with urllib.request.urlopen(self._url, timeout=2) as r:  # noqa: S310 (loopback)
                    text = r.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                for figure, name in GAUGES.items():
                    if line.startswith(f'{name}{{adapter="webhook"}} '):
                        value = float(line.rsplit(" ", 1)[1])
                        self.peak[figure] = max(value, self.peak.get(figure, value))

    def stop(self) -> dict[str, float | None]:
        self._stop.set()
        self._thread.join(timeout=10)
        return {f"peak_{figure}": self.peak.get(figure) for figure in GAUGES}


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
        "lateness_s": [round(x, 4) for x in late],
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
        "late_over_1s_share": sum(1 for x in late if x > 1) / len(late) if late else None,
    }


def run_once(bootstrap: str, tracker: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run on fresh topics with a fresh service process; its figures."""
    began = time.monotonic()
    delay = args.delay_s
    settings = fresh_settings(
        bootstrap,
        trace_delay_minutes=delay / 60,
        trace_lookahead_memory_mib=args.lookahead_mib,
        trace_max_buffered=args.max_buffered,
        trace_topic_partitions=args.partitions,
        metrics_port=free_port(),
    )
    log = Path(tempfile.gettempdir()) / f"bench-scheduling-{settings.trace_group_id}.log"
    proc = _start_service(settings, tracker, Path(args.root).resolve(), log)
    try:
        wait_ready(proc, settings.metrics_port)
        gauges = _Gauges(settings.metrics_port)
        try:
            due = _publish(settings, args, delay)
            posts = _collect(tracker, due, proc, deadline=max(due.values()) + args.grace)
        finally:
            held = gauges.stop()
        u = usage(proc.pid)
        rss = u.peak_rss_mib if u else None
    finally:
        exit_code = stop_process(proc)
    result = {**_report(due, posts), **held}
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
        if name != "log" and not isinstance(value, str | list):
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
    (">1 s %", "late_over_1s_share", "{:.2%}"),
    ("held", "peak_buffered", "{:.0f}"),
    ("held MiB", "peak_buffered_bytes", "{:.1f}"),
    ("RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("exit", "exit_code", "{:.0f}"),
    ("took s", "took_s", "{:.0f}"),
]


def _row(label: str, figures: dict[str, Any]) -> str:
    shown = dict(figures)
    if shown.get("peak_buffered_bytes") is not None:
        shown["peak_buffered_bytes"] /= 2**20
    cells = [
        "-" if shown.get(name) is None else fmt.format(shown[name]) for _, name, fmt in COLUMNS
    ]
    return f"{label:8}" + "".join(f"{c:>9}" for c in cells)


def _table(args: argparse.Namespace, runs: list[dict[str, Any]]) -> str:
    lines = [
        f"{args.rate:g} trades/s for {args.seconds:g} s, closed_at ±{args.disorder:g} s, "
        f"delay {args.delay_s:g} s, look-ahead budget {args.lookahead_mib:g} MiB, "
        f"{args.partitions} partitions, seed {args.seed}, service from "
        f"{Path(args.root).resolve()}",
        f"{'':8}" + "".join(f"{heading:>9}" for heading, _, _ in COLUMNS),
        *(_row(f"run {i + 1}", r) for i, r in enumerate(runs)),
    ]
    if len(runs) > 1:
        lines.append(_row("median", _median(runs)))
    lines += [f"service log kept: {r['log']}" for r in runs if r["log"]]
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--scenario", choices=sorted(SCENARIOS), help="the issue's cases (see the docstring)"
    )
    parser.add_argument("--rate", type=float, default=200, help="trades per second")
    parser.add_argument("--seconds", type=float, default=60, help="how long to publish")
    parser.add_argument(
        "--disorder", type=float, default=60, help="closed_at spread, ± s (below the 5 m skew)"
    )
    parser.add_argument("--margin", type=float, default=15, help="delay beyond the disorder, s")
    parser.add_argument("--delay", type=float, help="TRACE_DELAY_MINUTES x 60 (disorder + margin)")
    parser.add_argument(
        "--lookahead-mib",
        type=float,
        default=DEFAULT_LOOKAHEAD_MIB,
        help="TRACE_LOOKAHEAD_MEMORY_MIB (the service's default)",
    )
    parser.add_argument(
        "--max-buffered",
        type=int,
        default=Settings.model_fields["trace_max_buffered"].default,
        help="TRACE_MAX_BUFFERED (the service's default; to compare with older versions)",
    )
    parser.add_argument("--partitions", type=int, default=6, help="of every topic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--grace", type=float, default=60, help="wait past the last due time, s, then stop"
    )
    parser.add_argument("--root", default=str(ROOT), help="checkout whose service to run")
    parser.add_argument(
        "--json", metavar="PATH", help="write the figures and latenesses there, the plot beside"
    )
    scenario = parser.parse_known_args(argv)[0].scenario
    if scenario:
        parser.set_defaults(**SCENARIOS[scenario])
    args = parser.parse_args(argv)
    args.delay_s = args.disorder + args.margin if args.delay is None else args.delay
    if args.rate <= 0 or args.seconds <= 0 or args.runs < 1 or args.margin <= 0:
        parser.error("--rate, --seconds, --margin and --runs must be positive")
    if args.delay_s <= args.disorder:
        parser.error("the delay must exceed the disorder: trades would arrive after their due")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    runs: list[dict[str, Any]] = []
    with broker() as bootstrap, _tracker() as tracker:
        for i in range(args.runs):
            runs.append(run_once(bootstrap, tracker, args))
            print(f"run {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
    print(_table(args, runs))
    if args.json:
        median = _median(runs) if len(runs) > 1 else None
        results = {"parameters": vars(args), "runs": runs, "median": median}
        path = Path(args.json)
        path.write_text(json.dumps(results))
        plot(results, path.with_suffix(".png"))
        print(f"results written to {path}, the plot to {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
