"""Composition root of the `trace-stream` command: read settings, build, run, stop on SIGTERM.

Every user error ends in one line on stderr naming what to fix, and the documented
exit code: 2 invalid configuration or arguments, 1 an unreachable broker or a failed
check, 130 a Ctrl-C in a command other than `run`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from importlib.metadata import version
from types import FrameType
from typing import Any, NoReturn, cast

from prometheus_client import CollectorRegistry

from trace_stream import codec, ops
from trace_stream.core import config_errors, topics
from trace_stream.core.errors import ConfigError, KafkaError, TraceStreamError
from trace_stream.kafka import Admin
from trace_stream.kafka.connect import refusal
from trace_stream.ops import source
from trace_stream.service import app, heap
from trace_stream.settings import Settings, load
from trace_stream.telemetry import health, logs

log = logging.getLogger("trace_stream")


def _run(settings: Settings, _: argparse.Namespace) -> int:
    """The service. Health answers from the start (not ready while Kafka is awaited);
    the first SIGTERM/SIGINT stops it gracefully, a second one ends it at once; a
    shutdown that overruns `TRACE_SHUTDOWN_TIMEOUT_SECONDS` + GRACE ends it too."""
    service = app.build(settings, CollectorRegistry())
    _on_signals(service.stop)
    if settings.metrics_port:
        try:
            health.serve(settings.metrics_port, service.metrics.registry, service.health)
        except OSError as exc:
            raise ConfigError(
                f"METRICS_PORT: cannot listen on port {settings.metrics_port} "
                f"({exc.strerror or exc}); set a free port, or 0 for no metrics server"
            ) from None
    service.start()  # raises before any stage runs: `main` reports it in one line
    log.info(
        "trace-stream running",
        extra={
            "adapters": ",".join(settings.enabled_adapters),
            "delay_minutes": settings.trace_delay_minutes,
            "input_topic": settings.trace_input_topic,
        },
    )
    released = time.monotonic()
    while not service.stop.is_set():
        service.wait(1.0)
        if time.monotonic() - released >= heap.RELEASE_EVERY:
            heap.release()  # what the Kafka clients' threads freed, back to the OS
            released = time.monotonic()
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
    """`topics ensure|describe`: one line naming what to check when Kafka fails; each
    step waits at most TRACE_KAFKA_TIMEOUT_SECONDS."""
    timeout = settings.trace_kafka_timeout_seconds
    existing = source.topics_on_broker(settings, timeout)  # one line if unreachable
    specs = topics.specs(settings)
    signal_settings = topics.signal_settings_spec(settings)
    if args.action == "ensure" and args.signal_settings:
        if signal_settings is None:
            raise ConfigError(
                "--signal-settings: TRACE_SIGNAL_SETTINGS_TOPIC is empty; name the topic"
            )
        specs.append(signal_settings)
    elif args.action == "describe" and signal_settings is not None:
        specs.append(signal_settings)
    admin = Admin(source.quiet_config(settings))
    try:
        if args.action == "ensure":
            created = admin.create(specs, timeout)
            for spec in specs:
                print(f"{spec.name:<32} {'created' if spec.name in created else 'exists'}")
            return 0
        names = [s.name for s in specs if s.name in existing]
        configs = admin.describe(names, timeout) if names else {}
    except KafkaError as exc:
        raise TraceStreamError(
            f"topics {args.action}: {exc}; check TRACE_TOPIC_PARTITIONS, "
            "TRACE_TOPIC_REPLICATION_FACTOR and that this client may manage topics"
        ) from None
    for spec in specs:
        if spec is signal_settings:
            if spec.name not in existing:
                print(f"{spec.name:<32} missing (optional: the platform's signal settings)")
                continue
            policy = configs.get(spec.name, {}).get("cleanup.policy", "delete")
            print(f"{spec.name:<32} partitions={existing[spec.name]} cleanup.policy={policy}")
            continue
        if spec.name not in existing:
            print(f"{spec.name:<32} missing (run: trace-stream topics ensure)")
            continue
        retention = configs.get(spec.name, {}).get("retention.ms", "broker default")
        print(f"{spec.name:<32} partitions={existing[spec.name]} retention.ms={retention}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line (what is wrong, where to look), exit 2, as a bad setting."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see: {self.prog} --help)\n")


RUN_HELP = """\
Run the service: read TRACE_INPUT_TOPIC, drop every personal field, hold each trade
on the delay topic until closed_at + TRACE_DELAY_MINUTES, then post it to each enabled
tracker, with retries and a dead-letter topic. Configured from the environment (see
docs/configuration.md); serves /metrics, /healthz and /readyz on METRICS_PORT.
SIGTERM or SIGINT stops it gracefully; a second one ends it at once. Exit status: 0
stopped, 1 the service failed (no broker within TRACE_STARTUP_TIMEOUT_SECONDS, a stage
stopped), 2 invalid configuration.
"""


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="trace-stream",
        description="Publish closed trades, redacted, to performance trackers. "
        "Configured from the environment (see docs/configuration.md).",
    )
    # The installed distribution's version: what a wheel or an image really holds.
    p.add_argument("--version", action="version", version=f"trace-stream {version('trace-stream')}")
    sub = p.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    run = sub.add_parser(
        "run",
        help="run the service until SIGTERM/SIGINT",
        description=RUN_HELP,
        formatter_class=raw,
    )
    run.set_defaults(func=_run)
    t = sub.add_parser(
        "topics",
        help="create or show the internal topics",
        description="Create or show the delay, retry and dead-letter topics.",
    )
    actions = t.add_subparsers(dest="action", required=True, metavar="{ensure,describe}")
    ensure = actions.add_parser(
        "ensure",
        help="create the internal topics that are missing (idempotent)",
        description="Create the delay, retry and dead-letter topics that do not exist yet, "
        "with TRACE_TOPIC_PARTITIONS partitions, TRACE_TOPIC_REPLICATION_FACTOR and the "
        "configured retention; print each topic and whether it was created. Existing "
        "topics are left as they are.",
    )
    ensure.add_argument(
        "--signal-settings",
        action="store_true",
        help="also create TRACE_SIGNAL_SETTINGS_TOPIC, compacted, if it does not exist "
        "(the platform writes it; create it here only if the platform does not)",
    )
    ensure.set_defaults(func=_topics)
    actions.add_parser(
        "describe",
        help="show partitions and retention of each internal topic",
        description="Print each internal topic with its partition count and retention.ms, "
        "or 'missing' for one that does not exist.",
    ).set_defaults(func=_topics)
    # Subparsers are _Parser too (argparse builds them with the parent's class).
    ops.register(cast("argparse._SubParsersAction[argparse.ArgumentParser]", sub))
    return p


def _check_kafka_config(settings: Settings) -> None:
    """ConfigError, naming the variable, if librdkafka refuses the rendered config for a
    consumer or a producer (an unknown key, a bad value, a SASL mechanism this build
    lacks): it would otherwise fail only when the first client is built."""
    without_extra = settings.model_copy(update={"kafka_extra_config": {}})
    for consumer in (True, False):
        why = refusal(_config(settings, consumer), consumer=consumer)
        if why is not None:
            base_ok = refusal(_config(without_extra, consumer), consumer=consumer) is None
            raise config_errors.kafka_refused(
                why, settings.kafka_config(), settings.kafka_security_protocol, from_extra=base_ok
            )


def _config(settings: Settings, consumer: bool) -> dict[str, Any]:
    if consumer:
        return settings.consumer_config(settings.trace_group_id, "earliest")
    return settings.kafka_config()


def main(argv: Sequence[str] | None = None) -> int:
    """The command's exit status. A reader that closes the output early (`| head`)
    ends the command quietly, as it ends git or grep: exit 141 (128 + SIGPIPE)."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is
    still buffered for the closed pipe cannot fail with a second traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (captured in a test)
        pass
    finally:
        os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load(Settings)
        _check_kafka_config(settings)
        codec.check_schemas()
        logs.configure(settings.log_format, settings.log_level)
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(f"trace-stream: {_one_line(exc)}", file=sys.stderr)
        return 2
    except TraceStreamError as exc:
        print(f"trace-stream: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # `run` handles SIGINT itself; the other commands stop here
        print("trace-stream: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
