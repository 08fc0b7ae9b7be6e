"""Helpers shared by the tests: events with canary personal values, waiting with a
deadline, reading a topic back, and running the service in-process or as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import confluent_kafka
import pytest

from trace_stream import codec
from trace_stream.codec import avro, wire
from trace_stream.core.clock import utc_now
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import TraceDelivery
from trace_stream.core.topics import TopicSpec, specs
from trace_stream.kafka import Admin, Producer
from trace_stream.pipeline import consent
from trace_stream.service import app
from trace_stream.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def canaries(tag: str) -> dict[str, str]:
    """Unique personal values: if any appears downstream, redaction leaked."""
    return {
        "user_id": f"canary-uid-{tag}",
        "user_email": f"canary.{tag}@leak.example",
        "user_name": f"Canary Person {tag}",
        "client_id": f"canary-client-{tag}",
        "account_id": f"canary-acct-{tag}",
    }


def trade_event(trade_id: str, **overrides: Any) -> dict[str, Any]:
    closed = overrides.pop("closed_at", datetime.now(UTC))
    event: dict[str, Any] = {
        "trade_id": trade_id,
        "signal_id": "SIG-1",
        **canaries(trade_id),
        "instrument": "EURUSD",
        "side": "BUY",
        "volume": 1.0,
        "entry_price": 1.08,
        "exit_price": 1.09,
        "opened_at": closed - timedelta(hours=1),
        "closed_at": closed,
        "profit_loss": 100.0,
        "fees": 1.5,
        "currency": "USD",
        "status": "closed",
        "tracing_opt_in": True,
        "tracing_adapters": ["webhook"],
    }
    event.update(overrides)
    return event


_ADMINS: dict[str, Admin] = {}


def admin_for(settings: Settings) -> Admin:
    """One admin client per cluster for the whole test session. Admin clients are
    kept, not dropped after each use: tearing one down right after an admin request
    has crashed the interpreter here (a segfault in librdkafka's background-queue
    purge), so the tests do not create and destroy them by the dozen."""
    bootstrap = settings.kafka_bootstrap_servers
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = Admin(settings.kafka_config())
    return _ADMINS[bootstrap]


def make_settings(bootstrap: str, *, create_topics: bool = True, **overrides: Any) -> Settings:
    """Settings isolated per test: own topics and consumer groups on the shared broker."""
    uid = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "trace_group_id": f"ts-{uid}",
        "trace_instance_id": f"test-{uid}",
        "trace_input_topic": f"trade.closed.{uid}",
        # Not created unless a test asks for it (`signal_settings_topic`).
        "trace_signal_settings_topic": f"signal.tracing.{uid}",
        "trace_topic_prefix": f"trace.{uid}",
        "trace_topic_partitions": 2,
        "trace_delay_minutes": 1 / 60,
        "trace_retry_schedule": "200ms,400ms,600ms,800ms,1s",
        "trace_shutdown_timeout_seconds": 5,
        "metrics_port": 0,
        "kafka_session_timeout_ms": 6000,
    }
    values.update(overrides)
    settings = Settings(**values)
    if not create_topics:
        return settings
    admin = admin_for(settings)
    admin.create(specs(settings))
    admin.create([TopicSpec(settings.trace_input_topic, 2, 1, {})])
    return settings


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `trace-stream` process needs to run with these settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRACE_", "KAFKA_", "WEBHOOK_"))
    }
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        env[name.upper()] = str(
            value.get_secret_value() if hasattr(value, "get_secret_value") else value
        )
    env.update(extra)
    return env


def publish(
    settings: Settings, *items: dict[str, Any] | bytes, partition: int | None = None
) -> None:
    producer = Producer(settings.kafka_config())
    for item in items:
        value = item if isinstance(item, bytes) else codec.encode("trade_closed", item)
        key = None if isinstance(item, bytes) else str(item["trade_id"]).encode()
        producer.produce(OutRecord(settings.trace_input_topic, value, key=key, partition=partition))
    producer.flush()


def read_topics(
    settings: Settings, *topics: str, timeout: float = 10
) -> list[confluent_kafka.Message]:
    """Every committed record of `topics`, read from the beginning to their current end."""
    consumer = confluent_kafka.Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        parts = [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for topic in topics
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        marks = {
            (p.topic, p.partition): consumer.get_watermark_offsets(p, timeout=10) for p in parts
        }
        ends = {tp: high for tp, (low, high) in marks.items() if high > low}
        parts = [p for p in parts if (p.topic, p.partition) in ends]
        if not parts:
            return []
        consumer.assign(parts)
        out: list[confluent_kafka.Message] = []
        deadline = time.monotonic() + timeout

        def at_end() -> bool:
            # position(), not the last offset seen: transaction markers take offsets too.
            return all(p.offset >= ends[(p.topic, p.partition)] for p in consumer.position(parts))

        while not at_end():
            assert time.monotonic() < deadline, f"could not read {topics} to the end"
            m = consumer.poll(0.2)
            if m is not None and not m.error():
                out.append(m)
        return out
    finally:
        consumer.close()


@contextmanager
def running(
    settings: Settings, clock: Callable[[], datetime] = utc_now, **parts: Any
) -> Iterator[app.Service]:
    """The real service, in-process, with any collaborator of `app.Service` replaced."""
    service = app.build(settings, clock=clock)
    for name, value in parts.items():
        setattr(service, name, value)
    service.start()
    try:
        yield service
    finally:
        service.close()
        assert service.failed is None, f"a stage crashed: {service.failed!r}"


class Process:
    """`trace-stream run` as a real OS process, for crash and signal tests."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"],
            env={**env, "LOG_FORMAT": "json"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


def create_signal_settings_topic(settings: Settings, partitions: int = 2) -> str:
    """The test's signal settings topic, compacted, as the platform would create it."""
    topic = settings.trace_signal_settings_topic
    admin_for(settings).create([TopicSpec(topic, partitions, 1, {"cleanup.policy": "compact"})])
    return topic


def publish_signal(
    settings: Settings,
    signal_id: str,
    enabled: bool | None = True,
    adapters: tuple[str, ...] = ("webhook",),
    *,
    value: bytes | None = None,
) -> None:
    """One record on the test's signal settings topic, flushed (committed on the topic)
    when this returns. `enabled=None`: a tombstone. `value`: raw bytes instead."""
    if value is None and enabled is not None:
        entry = consent.SignalSettings(signal_id, enabled, frozenset(adapters), datetime.now(UTC))
        value = wire.encode_signal_settings(entry)
    producer = confluent_kafka.Producer({**settings.kafka_config(), "acks": "all"})
    producer.produce(settings.trace_signal_settings_topic, value, key=signal_id.encode())
    assert producer.flush(10) == 0, "settings record not acknowledged"


def unencodable(monkeypatch: pytest.MonkeyPatch, trade_id: str) -> None:
    """Make encoding the delivery of `trade_id` fail, as a value that validation let
    through and Avro cannot hold would (its message is a canary: it must not be shown)."""
    encode = avro.encode_delivery

    def fussy(d: TraceDelivery) -> bytes:
        if d.trace.trade_id == trade_id:
            raise OverflowError("canary value")
        return encode(d)

    monkeypatch.setattr(avro, "encode_delivery", fussy)  # what `codec.wire` calls
