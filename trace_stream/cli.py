"""Composition root of the `trace-stream` command: read settings, build, run, stop on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import version
from types import FrameType
from typing import NoReturn

from prometheus_client import CollectorRegistry

from . import app, health, logs, ops, topics
from .errors import ConfigError, TraceStreamError
from .kafka import Admin
from .settings import Settings, load

log = logging.getLogger("trace_stream")


def _run(settings: Settings, _: argparse.Namespace) -> int:
    """The service. Health answers from the start (not ready while Kafka is awaited);
    the first SIGTERM/SIGINT stops it gracefully, a second one ends it at once; a
    shutdown that overruns `TRACE_SHUTDOWN_TIMEOUT_SECONDS` + GRACE ends it too."""
    service = app.build(settings, CollectorRegistry())
    _on_signals(service.stop)
    if settings.metrics_port:
        health.serve(settings.metrics_port, service.metrics.registry, service.health)
    service.start()  # raises before any stage runs: `main` reports it in one line
    log.info(
        "trace-stream running",
        extra={
            "adapters": ",".join(settings.enabled_adapters),
            "delay_minutes": settings.trace_delay_minutes,
            "input_topic": settings.trace_input_topic,
        },
    )
    while not service.stop.is_set():
        service.wait(1.0)
    bound = settings.trace_shutdown_timeout_seconds + GRACE
    watchdog = threading.Timer(bound, _overrun, args=(bound,))
    watchdog.daemon = True
    watchdog.start()
    service.close(bound)
    log.info("stopped")
    # Ends here, not through interpreter shutdown: no client library's destructor (a
    # librdkafka handle whose call never returned) can hold the process.
    _exit(1 if service.failed else 0)


GRACE = 10.0
"""Seconds a shutdown may take beyond TRACE_SHUTDOWN_TIMEOUT_SECONDS (closing clients)."""


def _on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os.write(2, b"trace-stream: second signal, exiting now\n")
            os._exit(128 + signum)
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _overrun(bound: float) -> NoReturn:
    log.error("shutdown did not finish within %gs; exiting", bound)
    _exit(1)


def _exit(code: int) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    admin = Admin(settings.kafka_config())
    specs = topics.specs(settings)
    if args.action == "ensure":
        created = admin.create(specs)
        for spec in specs:
            state = "created" if spec.name in created else "exists"
            print(f"{spec.name:<32} {state}")
        return 0
    existing = admin.existing()
    names = [s.name for s in specs if s.name in existing]
    configs = admin.describe(names) if names else {}
    for spec in specs:
        if spec.name not in existing:
            print(f"{spec.name:<32} missing (run: trace-stream topics ensure)")
            continue
        retention = configs.get(spec.name, {}).get("retention.ms", "broker default")
        print(f"{spec.name:<32} partitions={existing[spec.name]} retention.ms={retention}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trace-stream",
        description="Publish closed trades, redacted, to performance trackers. "
        "Configured from the environment (see README).",
    )
    # The installed distribution's version: what a wheel or an image really holds.
    p.add_argument("--version", action="version", version=f"trace-stream {version('trace-stream')}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the service until SIGTERM/SIGINT").set_defaults(func=_run)
    t = sub.add_parser("topics", help="create or show the internal topics")
    t.add_argument("action", choices=["ensure", "describe"])
    t.set_defaults(func=_topics)
    ops.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load(Settings)
        logs.configure(settings.log_format, settings.log_level)
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(f"trace-stream: {exc}", file=sys.stderr)
        return 2
    except TraceStreamError as exc:
        print(f"trace-stream: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
