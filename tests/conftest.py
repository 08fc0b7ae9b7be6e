"""Session fixtures: one real Kafka broker for the whole run.

KAFKA_BOOTSTRAP_SERVERS set: use that cluster. TRACE_TEST_BROKER=testcontainers:
testcontainers' Kafka module (needs a Docker engine). Otherwise a local single-node
Apache Kafka (KRaft) from Maven Central jars is started for the session.

`schema_registry`: a real Confluent-compatible Schema Registry (Apicurio Registry, from
Maven Central, needs Java 21+), started once per session by the first test asking for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from devenv.apicurio import LocalRegistry
from devenv.broker import LocalKafka
from devenv.tracker import Tracker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if os.environ.get("TRACE_TEST_BROKER") == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = LocalKafka()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[LocalRegistry]:
    """Compatibility BACKWARD globally; tests use their own subjects (`<topic>-value`)."""
    registry = LocalRegistry()
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    with Tracker() as t:
        yield t


@pytest.fixture(autouse=True)
def _no_internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test during which the service logged an internal error (a crash, an
    adapter bug). Expected alerts are logged by `trace_stream.telemetry.alerts` and allowed."""
    caplog.set_level(logging.INFO)
    yield
    bad = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR
        and r.name.startswith("trace_stream")
        and r.name != "trace_stream.telemetry.alerts"
    ]
    assert not bad, f"internal errors logged: {[r.getMessage() for r in bad]}"
