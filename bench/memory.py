"""Memory of the service holding a large backlog that is not due yet.

Publishes `--deliveries` trades (default 1,000,000) closed now to fresh topics
(6 partitions) with a batching producer, then starts the service (`python -m
trace_stream.cli run`, webhook adapter, TRACE_DELAY_MINUTES=`--delay-minutes` (600),
the look-ahead budget TRACE_LOOKAHEAD_MEMORY_MIB at its default) and, for `--minutes`
(10), samples every `--every` seconds (5) its RSS (VmRSS), peak RSS (VmHWM) and CPU
(/proc), and from its /metrics the events read by the scheduler stage
(`trust_trace_events_total`) and the deliveries the webhook deliverer holds
(`trust_trace_buffered`) and their bytes (`trust_trace_buffered_bytes`). Nothing is
due, so nothing may be posted: the counting tracker checks that.

Reports the samples and the least-squares slope of RSS over the last half of the
window, in MiB per minute, and the drift it implies over that half (slope x half the
window): "flat" when the drift is at most `--flat` MiB (10) either way.

    .venv/bin/python -m bench.memory                # 1,000,000 trades, 10 minutes
    .venv/bin/python -m bench.memory --quick        # 100,000 trades, 1 minute
    .venv/bin/python -m bench.memory --json out.json
    .venv/bin/python -m bench.memory --env MALLOC_MMAP_THRESHOLD_=131072

Loopback only; the broker (unless KAFKA_BOOTSTRAP_SERVERS is set), the tracker and
the service are stopped when the script ends.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    Progress,
    Tracker,
    broker,
    counting_tracker,
    service_command,
    start_process,
    stop_process,
    usage,
)
from devenv.broker import free_port
from devenv.trades import fresh_settings, publish_trades, service_env


def _metrics(port: int) -> dict[str, float]:
    """Events read (all outcomes) and deliveries buffered, from the service's /metrics."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {"read": 0.0, "buffered": 0.0, "buffered_mib": 0.0}
    for line in text.splitlines():
        if line.startswith("trust_trace_events_total{"):
            out["read"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("trust_trace_buffered{"):
            out["buffered"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("trust_trace_buffered_bytes{"):
            out["buffered_mib"] += float(line.rsplit(" ", 1)[1]) / 2**20
    return out


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def run(bootstrap: str, tracker: Tracker, args: argparse.Namespace) -> dict[str, Any]:
    settings = fresh_settings(
        bootstrap,
        trace_delay_minutes=args.delay_minutes,
        trace_topic_partitions=6,
        metrics_port=free_port(),
    )
    bar = Progress("publish", args.deliveries)
    began = time.monotonic()
    publish_trades(
        settings,
        (f"mem-{i:08d}" for i in range(args.deliveries)),
        datetime.now(UTC),
        progress=bar.update,
    )
    published_s = time.monotonic() - began
    bar.done(f"{args.deliveries / published_s:,.0f}/s")
    env = service_env(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker.url}/hook",
        LOG_LEVEL=args.log_level,
        LOG_FORMAT="json",
        **args.env,
    )
    log = Path(tempfile.gettempdir()) / f"bench-memory-{settings.trace_group_id}.log"
    samples: list[dict[str, float]] = []
    window = args.minutes * 60
    bar = Progress("service", round(window))
    start = time.monotonic()
    proc = start_process(service_command(), env, log)
    try:
        while (t := time.monotonic() - start) < window:
            u = usage(proc.pid)
            if u is None or proc.poll() is not None:
                raise RuntimeError(f"the service exited {proc.poll()}; see {log}")
            m = _metrics(settings.metrics_port)
            samples.append(
                {
                    "t_s": round(t, 1),
                    "rss_mib": round(u.rss_mib, 1),
                    "peak_rss_mib": round(u.peak_rss_mib, 1),
                    "cpu_s": round(u.cpu_s, 2),
                    "read": m.get("read", 0.0),
                    "buffered": m.get("buffered", 0.0),
                    "buffered_mib": round(m.get("buffered_mib", 0.0), 1),
                }
            )
            bar.update(
                round(t),
                f"RSS {u.rss_mib:5.0f} MiB  read {m.get('read', 0):>10,.0f}  "
                f"buffered {m.get('buffered', 0):>7,.0f} ({m.get('buffered_mib', 0):.1f} MiB)",
                force=True,
            )
            time.sleep(max(0.0, start + len(samples) * args.every - time.monotonic()))
    finally:
        exit_code = stop_process(proc)
    bar.done()
    posts = int(tracker.count()["count"])
    if exit_code == 0:
        log.unlink()
    half = [(s["t_s"] / 60, s["rss_mib"]) for s in samples if s["t_s"] >= window / 2]
    rss_slope = slope(half)
    drift = None if rss_slope is None else rss_slope * window / 120
    return {
        "parameters": {k: v for k, v in vars(args).items() if k != "json"},
        "published_per_s": args.deliveries / published_s,
        "samples": samples,
        "last_half_slope_mib_per_min": rss_slope,
        "last_half_drift_mib": drift,
        "flat": drift is not None and abs(drift) <= args.flat,
        "last_half_rss_range_mib": [min(y for _, y in half), max(y for _, y in half)]
        if half
        else None,
        "read_by_end": samples[-1]["read"] if samples else 0,
        "posts": posts,
        "exit_code": exit_code,
        "log": None if exit_code == 0 else str(log),
    }


def _table(result: dict[str, Any]) -> str:
    a = result["parameters"]
    others = dict(a["env"])
    mib = others.pop("TRACE_LOOKAHEAD_MEMORY_MIB", None)
    budget = "default" if mib is None else f"{mib} MiB"
    env = "".join(f", {k}={v}" for k, v in others.items())
    lines = [
        f"{a['deliveries']:,} trades closed now, delay {a['delay_minutes']:g} min, "
        f"look-ahead budget {budget}{env}, published at {result['published_per_s']:,.0f}/s, "
        f"watched {a['minutes']:g} min every {a['every']:g} s",
        f"{'t s':>7}{'RSS MiB':>10}{'peak MiB':>10}{'CPU s':>9}{'read':>11}{'buffered':>10}"
        f"{'held MiB':>10}",
    ]
    step = max(1, round(30 / a["every"]))  # one row per 30 s, and the last
    shown = result["samples"][::step]
    if result["samples"] and shown[-1] is not result["samples"][-1]:
        shown.append(result["samples"][-1])
    lines += [
        f"{s['t_s']:7.0f}{s['rss_mib']:10.1f}{s['peak_rss_mib']:10.1f}{s['cpu_s']:9.1f}"
        f"{s['read']:11,.0f}{s['buffered']:10,.0f}{s.get('buffered_mib', 0):10.1f}"
        for s in shown
    ]
    slope_ = result["last_half_slope_mib_per_min"]
    drift = result["last_half_drift_mib"]
    lo_hi = result["last_half_rss_range_mib"]
    lines.append(
        f"RSS over the last half: slope "
        f"{'-' if slope_ is None else f'{slope_:+.2f}'} MiB/min, drift "
        f"{'-' if drift is None else f'{drift:+.1f}'} MiB, range "
        f"{'-' if lo_hi is None else f'{lo_hi[0]:.1f}-{lo_hi[1]:.1f}'} MiB: "
        f"{'flat' if result['flat'] else 'NOT flat'} (|drift| <= {a['flat']:g} MiB); "
        f"events read by the end {result['read_by_end']:,.0f}/{a['deliveries']:,}; "
        f"posts {result['posts']} (must be 0); exit {result['exit_code']}"
    )
    if result["log"]:
        lines.append(f"service log kept: {result['log']}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="trades to publish")
    parser.add_argument("--minutes", type=float, default=10, help="how long to watch")
    parser.add_argument("--every", type=float, default=5, help="sampling period, s")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable for the service (repeatable), e.g. KAFKA_EXTRA_CONFIG or MALLOC_*",
    )
    parser.add_argument("--delay-minutes", type=float, default=600, help="TRACE_DELAY_MINUTES")
    parser.add_argument(
        "--flat", type=float, default=10, help="drift over the last half still called flat, MiB"
    )
    parser.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of the service")
    parser.add_argument("--json", metavar="PATH", help="write the full results there")
    parser.add_argument("--quick", action="store_true", help="100,000 trades, 1 minute")
    args = parser.parse_args(argv)
    if args.quick:
        args.deliveries, args.minutes = 100_000, 1.0
    if bad := [pair for pair in args.env if not pair.partition("=")[0] or "=" not in pair]:
        parser.error(f"--env {bad[0]!r}: expected NAME=VALUE")
    args.env = dict(pair.split("=", 1) for pair in args.env)
    if args.deliveries < 1 or args.minutes <= 0 or args.every <= 0:
        parser.error("--deliveries, --minutes and --every must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    with broker() as bootstrap, counting_tracker() as tracker:
        result = run(bootstrap, tracker, args)
    print(_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
