"""Each user error, as a new user meets it: `trace-stream` run as a process prints one
line on stderr naming the variable (or what to check), exits with the documented code
(2 invalid configuration, 1 unreachable broker), within a bound, with no traceback, no
librdkafka `%` line and no secret value (issue 11). A dead broker is a closed loopback
port, so none of these needs Kafka."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from devenv.tracker import Tracker

_OURS = ("TRACE_", "KAFKA_", "WEBHOOK_", "SCHEMA_", "ALERT_", "LOG_", "METRICS_", "MYFXBOOK_")
TIMEOUT = 1.0
"""TRACE_KAFKA_TIMEOUT_SECONDS in these tests."""
BOUND = 4 * TIMEOUT + 5  # the Kafka bound, plus the interpreter's start-up (about 1 s)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A tracker that answers, so only Kafka can fail a `check-config`."""
    with Tracker() as t:
        yield f"{t.url}/traces"


def trace_stream(*argv: str, **env: str) -> tuple[int, str, str, float]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OURS)}
    base.update(
        KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_closed_port()}",
        TRACE_KAFKA_TIMEOUT_SECONDS=str(TIMEOUT),
        TRACE_STARTUP_TIMEOUT_SECONDS="2",
        METRICS_PORT="0",
        KAFKA_SASL_PASSWORD="canary-sasl-password",
        SCHEMA_REGISTRY_BASIC_AUTH="user:canary-registry-password",
    )
    base.update(env)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "trace_stream.cli", *argv],
        env=base,
        capture_output=True,
        text=True,
        timeout=BOUND + 20,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def one_line(err: str, out: str = "") -> str:
    assert "Traceback" not in err + out
    assert "canary" not in err + out
    assert not [line for line in err.splitlines() if line.startswith("%")], err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trace-stream")
    return lines[0]


BAD_CONFIG = [
    ({"KAFKA_EXTRA_CONFIG": "{bad"}, "KAFKA_EXTRA_CONFIG: not valid JSON"),
    ({"KAFKA_EXTRA_CONFIG": '{"no.such.key": "1"}'}, "KAFKA_EXTRA_CONFIG: librdkafka refused"),
    ({"KAFKA_EXTRA_CONFIG": '{"acks": "lots"}'}, "KAFKA_EXTRA_CONFIG: librdkafka refused"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM: required"),
    (
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "NOPE"},
        "KAFKA_SASL_MECHANISM (with KAFKA_SECURITY_PROTOCOL=SASL_SSL)",
    ),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL: one of"),
    ({"ALERT_WEBHOOK_URL": "canary"}, "ALERT_WEBHOOK_URL: an http"),
    # What names a path, a header, a token or a URL is checked before anything connects.
    ({"KAFKA_EXTRA_CONFIG": '{"enable.auto.commit": true}'}, "enable.auto.commit is set by"),
    ({"TRACE_SCHEMA_DIR": "/nonexistent"}, "TRACE_SCHEMA_DIR: no trade_closed.avsc in"),
    ({"WEBHOOK_AUTH_HEADER": "Bad Header:"}, "WEBHOOK_AUTH_HEADER: a header name"),
    ({"WEBHOOK_AUTH_HEADER": ""}, "WEBHOOK_AUTH_HEADER: a header name"),
    ({"WEBHOOK_AUTH_TOKEN": "canary\nsecond line"}, "WEBHOOK_AUTH_TOKEN: printable ASCII"),
    ({"WEBHOOK_AUTH_TOKEN": ""}, "WEBHOOK_AUTH_TOKEN: printable ASCII"),
    ({"WEBHOOK_ENDPOINT": "canary"}, "WEBHOOK_ENDPOINT: Input should be a valid URL"),
    (
        {"TRACE_ENABLED_ADAPTERS": "myfxbook", "MYFXBOOK_WEBHOOK_URL": "http://127.0.0.1:1/x"},
        "MYFXBOOK_WEBHOOK_TOKEN: Field required",
    ),
    (
        {
            "TRACE_ENABLED_ADAPTERS": "myfxbook",
            "MYFXBOOK_WEBHOOK_URL": "http://127.0.0.1:1/x",
            "MYFXBOOK_WEBHOOK_TOKEN": "",
        },
        "MYFXBOOK_WEBHOOK_TOKEN: printable ASCII",
    ),
    (
        {"TRACE_ENABLED_ADAPTERS": "file", "FILE_EXPORT_DIR": "/etc/hostname/exports"},
        "FILE_EXPORT_DIR: /etc/hostname/exports is under /etc/hostname, which is not a dir",
    ),
    (
        {"TRACE_ENABLED_ADAPTERS": "file", "FILE_EXPORT_DIR": "/etc/hostname"},
        "FILE_EXPORT_DIR: /etc/hostname is not a directory",
    ),
    ({"S3_ENDPOINT_URL": "canary", "TRACE_ENABLED_ADAPTERS": "file"}, "S3_ENDPOINT_URL"),
]


@pytest.mark.parametrize("command", [["run"], ["check-config"]], ids=" ".join)
@pytest.mark.parametrize(("env", "words"), BAD_CONFIG, ids=[w for _, w in BAD_CONFIG])
def test_invalid_configuration_is_one_line_and_exit_2(
    endpoint: str, command: list[str], env: dict[str, str], words: str
) -> None:
    code, out, err, took = trace_stream(*command, **{"WEBHOOK_ENDPOINT": endpoint, **env})
    assert code == 2, err
    assert words in one_line(err, out)
    assert out == ""
    assert took < BOUND


DEAD_BROKER = [
    ["topics", "ensure"],
    ["topics", "describe"],
    ["dlq", "list"],
    ["dlq", "redrive", "--dry-run"],
    ["replay", "--from", "0", "--dry-run"],
    ["check-config", "--timeout", str(TIMEOUT)],
]


@pytest.mark.parametrize("argv", DEAD_BROKER, ids=" ".join)
def test_a_dead_broker_is_one_line_exit_1_and_bounded(endpoint: str, argv: list[str]) -> None:
    code, out, err, took = trace_stream(*argv, WEBHOOK_ENDPOINT=endpoint)
    assert code == 1, err
    line = one_line(err, out)
    assert "cannot reach Kafka at 127.0.0.1:" in line and "KAFKA_BOOTSTRAP_SERVERS" in line
    assert took < BOUND


def test_run_without_a_broker_ends_in_one_error_line(endpoint: str) -> None:
    """`run` waits TRACE_STARTUP_TIMEOUT_SECONDS for a broker, logging each attempt, then
    fails in one line."""
    code, out, err, took = trace_stream("run", WEBHOOK_ENDPOINT=endpoint, LOG_FORMAT="text")
    assert code == 1
    assert "Traceback" not in err and "canary" not in err + out
    assert not [line for line in err.splitlines() if line.startswith("%")], err
    last = err.splitlines()[-1]
    assert last.startswith("trace-stream: no Kafka broker at 127.0.0.1:")
    assert "KAFKA_BOOTSTRAP_SERVERS" in last
    assert took < BOUND


def test_a_busy_metrics_port_names_the_variable(endpoint: str) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err, _ = trace_stream("run", WEBHOOK_ENDPOINT=endpoint, METRICS_PORT=str(port))
    assert code == 2
    assert f"METRICS_PORT: cannot listen on port {port}" in one_line(err, out)


@pytest.mark.parametrize(
    "argv",
    [
        ["topics"],
        ["topics", "create"],
        ["replay", "--from", "soon"],
        ["dlq", "list", "--limit", "x"],
    ],
    ids=" ".join,
)
def test_bad_arguments_are_one_line_exit_2(argv: list[str]) -> None:
    code, out, err, _ = trace_stream(*argv)
    assert code == 2
    assert one_line(err, out).endswith("--help)")


def test_run_and_topics_ensure_help_describe_themselves() -> None:
    code, out, _, _ = trace_stream("run", "--help")
    assert code == 0 and "Run the service" in out
    code, out, _, _ = trace_stream("topics", "ensure", "--help")
    assert code == 0 and "usage: trace-stream topics ensure" in out
    assert "Create the delay, retry and dead-letter topics" in out
