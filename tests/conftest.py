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
import sys
from collections.abc import Iterator

import pytest

from devenv.apicurio import LocalRegistry
from devenv.broker import LocalKafka
from devenv.tracker import Tracker
from tests.support import ROOT


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


@pytest.fixture(scope="session", autouse=True)
def _checkout_entry_points(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Adapters this checkout's pyproject.toml declares but the installed metadata lacks
    (a virtualenv installed from another checkout, or before `make` re-installed it) are
    made visible through a small dist-info of their own, so the tests build them through
    entry points as the service does. A no-op in a venv installed from this checkout."""
    import tomllib
    from importlib.metadata import entry_points

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "trace_stream.adapters"
    ]
    installed = {ep.name for ep in entry_points(group="trace_stream.adapters")}
    missing = {name: target for name, target in declared.items() if name not in installed}
    if not missing:
        return
    folder = tmp_path_factory.mktemp("entry-points")
    info = folder / "trace_stream_checkout-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: trace-stream-checkout\nVersion: 0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in missing.items())
    (info / "entry_points.txt").write_text(f"[trace_stream.adapters]\n{lines}")
    sys.path.append(str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH"), str(folder)) if p
    )
