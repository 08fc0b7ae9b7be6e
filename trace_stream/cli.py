"""Composition root of the `trace-stream` command: read settings, build, run, stop on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from prometheus_client import CollectorRegistry

from . import app, health, logs, ops, topics
from .errors import ConfigError, TraceStreamError
from .kafka import Admin
from .settings import Settings, load

log = logging.getLogger("trace_stream")


def _run(settings: Settings, _: argparse.Namespace) -> int:
    service = app.build(settings, CollectorRegistry())

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        service.stop.set()

    service.start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.metrics_port:
        health.serve(settings.metrics_port, service.metrics.registry, service.health)
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
    service.close(settings.trace_shutdown_timeout_seconds + 10)
    log.info("stopped")
    return 1 if service.failed else 0


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
