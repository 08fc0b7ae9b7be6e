"""`trace-stream check-config`: exit 0 / 1 / 2, one-line errors, secrets never printed."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from devenv.tracker import Tracker
from tests.support import create_signal_settings_topic, make_settings
from trace_stream.ops import source

from .conftest import Cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_all_good_prints_masked_settings(kafka_bootstrap: str, tracker: Tracker, cli: Cli) -> None:
    cli.use(
        make_settings(kafka_bootstrap),
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces/canary-path-token",
        WEBHOOK_AUTH_TOKEN="canary-token-1",
        KAFKA_SASL_PASSWORD="canary-token-2",
        KAFKA_EXTRA_CONFIG=json.dumps({"ssl.key.password": "canary-token-3"}),
    )
    ran = cli("check-config", "--timeout", "2")
    assert ran.code == 0, ran.err
    assert "canary" not in ran.text
    assert "WEBHOOK_AUTH_TOKEN" in ran.out and "**********" in ran.out
    assert f"http://127.0.0.1:{tracker.port}/..." in ran.out
    assert "check-config: all good" in ran.out
    assert not tracker.requests(), "a check never posts"


def test_unreachable_broker_is_one_line_and_fast(
    kafka_bootstrap: str, cli: Cli, tracker: Tracker
) -> None:
    cli.use(
        make_settings(kafka_bootstrap),
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces",
    )
    started = time.monotonic()
    ran = cli("check-config", "--timeout", "1")
    assert time.monotonic() - started < 5
    assert ran.code == 1
    [line] = ran.err.splitlines()
    assert "127.0.0.1:1" in line and "KAFKA_BOOTSTRAP_SERVERS" in line


def test_tools_fail_in_one_line_without_a_broker(
    kafka_bootstrap: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "CONNECT_TIMEOUT", 1.0)
    cli.use(make_settings(kafka_bootstrap), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    for argv in (["dlq", "list"], ["replay", "--from", "0", "--dry-run"]):
        ran = cli(*argv)
        assert ran.code == 1
        assert len(ran.err.splitlines()) == 1 and "KAFKA_BOOTSTRAP_SERVERS" in ran.err


def test_unknown_adapter_is_invalid_configuration(kafka_bootstrap: str, cli: Cli) -> None:
    cli.use(
        make_settings(kafka_bootstrap),
        TRACE_ENABLED_ADAPTERS="webhook,nope",
        WEBHOOK_ENDPOINT="http://127.0.0.1:9/x",
    )
    ran = cli("check-config")
    assert ran.code == 2
    assert ran.out == ""
    [line] = ran.err.splitlines()
    assert "TRACE_ENABLED_ADAPTERS" in line and "'nope'" in line


def test_missing_adapter_variable_is_named(kafka_bootstrap: str, cli: Cli) -> None:
    cli.use(make_settings(kafka_bootstrap))
    ran = cli("check-config")
    assert ran.code == 2
    [line] = ran.err.splitlines()
    assert "WEBHOOK_ENDPOINT" in line


def test_unreachable_tracker_fails_the_check(kafka_bootstrap: str, cli: Cli) -> None:
    cli.use(make_settings(kafka_bootstrap), WEBHOOK_ENDPOINT=f"http://127.0.0.1:{_closed_port()}/t")
    ran = cli("check-config", "--timeout", "2")
    assert ran.code == 1
    [line] = ran.err.splitlines()
    assert "WEBHOOK_ENDPOINT" in line and "cannot connect" in line


def test_missing_topics_are_a_warning(kafka_bootstrap: str, tracker: Tracker, cli: Cli) -> None:
    cli.use(
        make_settings(kafka_bootstrap),
        TRACE_TOPIC_PREFIX="never-created",
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces",
    )
    ran = cli("check-config", "--timeout", "2")
    assert ran.code == 0, ran.err
    assert "run: trace-stream topics ensure" in ran.out
    assert re.search(
        r"warn +consent +signal settings topic signal\.tracing\.\w+ not found", ran.out
    )


def test_signal_settings_topic_is_reported(
    kafka_bootstrap: str, tracker: Tracker, cli: Cli
) -> None:
    settings = make_settings(kafka_bootstrap)
    create_signal_settings_topic(settings)
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    ran = cli("check-config", "--timeout", "2")
    assert ran.code == 0, ran.err
    assert (
        f"ok    consent     signal settings topic {settings.trace_signal_settings_topic} present"
        in ran.out
    )
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces", TRACE_SIGNAL_SETTINGS_TOPIC="")
    assert "no signal settings topic: the events' flags decide" in cli("check-config").out
