"""End-to-end throughput of the real service: trade.closed -> delay topic -> webhook.

Starts a LocalKafka (or uses KAFKA_BOOTSTRAP_SERVERS) and a fast aiohttp tracker in
a separate process that answers 200 to every POST and counts them (bench/common.py). Each
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
import statistics
import tempfile
import time
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
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


@dataclass(frozen=True)
class Result:
    total: float  # trades/s, service start -> last post
    steady: float  # trades/s, first post -> last post
    startup: float  # seconds, service start -> first post
    rss_mib: float
    cpu_s: float
    duplicates: int


def run_once(
    bootstrap: str, tracker: Tracker, trades: int, in_flight: int, args: argparse.Namespace
) -> Result:
    settings = fresh_settings(
        bootstrap, trace_delay_minutes=0, trace_topic_partitions=6, metrics_port=free_port()
    )
    publish_trades(settings, (f"bench-{i}" for i in range(trades)), datetime.now(UTC))
    tracker.reset()
    env = service_env(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker.url}/hook",
        TRACE_MAX_IN_FLIGHT=str(in_flight),
        LOG_FORMAT="json",
        LOG_LEVEL=args.log_level,
    )
    log = Path(tempfile.gettempdir()) / f"bench-pipeline-{settings.trace_group_id}.log"
    start = time.monotonic()
    proc = start_process(service_command(), env, log)
    try:
        deadline = start + args.timeout
        while (seen := tracker.count())["count"] < trades:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{seen['count']}/{trades} posts by the deadline; see {log}")
            time.sleep(0.05)
        end = usage(proc.pid)
    finally:
        exit_code = stop_process(proc, timeout=30)
    if exit_code != 0 or end is None:
        raise RuntimeError(f"service exited {exit_code}; see {log}")
    log.unlink()
    first, last = seen["first"], seen["last"]
    return Result(
        total=trades / (last - start),
        steady=(trades - 1) / (last - first),
        startup=first - start,
        rss_mib=end.peak_rss_mib,
        cpu_s=end.cpu_s,
        duplicates=int(seen["count"] - min(seen["keys"], seen["trades"])),
    )


def _line(label: str, r: Result, trades: int) -> str:
    return (
        f"{label:18} {r.steady:7.0f} trades/s steady  {r.total:7.0f} overall  "
        f"startup {r.startup:5.2f} s  peak RSS {r.rss_mib:5.0f} MiB  "
        f"CPU {r.cpu_s / trades * 1000:5.3f} s/1000  dup {r.duplicates}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trades", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", default="64", help="comma list of TRACE_MAX_IN_FLIGHT")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of one run, s")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the service")
    args = parser.parse_args()
    in_flight = [int(n) for n in args.in_flight.split(",")]
    with broker() as bootstrap, counting_tracker() as tracker:
        print(f"{args.trades} trades x {args.runs} runs, in-flight {in_flight}")
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


if __name__ == "__main__":
    main()
