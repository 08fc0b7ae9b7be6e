"""The signal settings stage with a scripted stand-in for its Kafka client: loading to
the end before `loaded`, asking again through a broker that does not answer, and an
absent topic. The real client is exercised in tests/integration/test_consent.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from tests.support import wait_for
from trace_stream.codec.wire import encode_signal_settings as encode
from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, Message
from trace_stream.pipeline.consent import SignalSettings, SignalTable
from trace_stream.stages.signals import STAGE, SignalFollower
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

TOPIC = "signal.tracing"


def record(offset: int, signal_id: str, enabled: bool) -> Message:
    value = encode(SignalSettings(signal_id, enabled, frozenset({"webhook"}), datetime.now(UTC)))
    return Message(TOPIC, 0, offset, signal_id.encode(), value, [])


class Scripted:
    """Stands in for `kafka.Follower`: one partition holding `records`, delivered one
    per poll; `failures` metadata requests fail first."""

    def __init__(self, records: list[Message], failures: int = 0, exists: bool = True):
        self.records = records
        self.failures = failures
        self.exists = exists
        self.position = 0
        self.closed = False
        self.parts = [(TOPIC, 0)]
        self.assigned: list[TP] = []

    def partitions(self, timeout: float) -> list[TP] | None:
        if self.failures:
            self.failures -= 1
            raise KafkaError("metadata: Local: Broker transport failure", "_TRANSPORT")
        return list(self.parts) if self.exists else None

    def assign(self, tps: list[TP]) -> None:
        self.assigned += [tp for tp in tps if tp not in self.assigned]

    def ends(self, timeout: float) -> dict[TP, tuple[int, int]]:
        return {(TOPIC, 0): (0, len(self.records))}

    def positions(self) -> dict[TP, int]:
        return {(TOPIC, 0): self.position}

    def poll(self, timeout: float, max_messages: int = 500) -> list[Message]:
        if self.position < len(self.records):
            self.position += 1
            return [self.records[self.position - 1]]
        threading.Event().wait(min(timeout, 0.01))
        return []

    def close(self, timeout: float = 10) -> None:
        self.closed = True


def start(scripted: Scripted, **options: Any) -> tuple[SignalFollower, Health, threading.Event]:
    health = Health([STAGE])
    health.started()
    stage = SignalFollower(
        topic=TOPIC,
        follower_factory=lambda _: scripted,  # type: ignore[arg-type, return-value]
        table=SignalTable(),
        metrics=Metrics(CollectorRegistry()),
        health=health,
        retry_every=0.01,
        **options,
    )
    stop = threading.Event()
    threading.Thread(target=stage.run, args=(stop,), daemon=True).start()
    return stage, health, stop


def test_loaded_only_after_every_record_up_to_the_end_and_then_ready() -> None:
    records = [record(i, f"S{i % 3}", i % 2 == 0) for i in range(50)]
    scripted = Scripted(records)
    stage, health, stop = start(scripted)
    assert stage.loaded.wait(5)
    assert scripted.position == 50, "loaded before the table was read to its end"
    assert len(stage.table) == 3
    assert health.ready() == (True, "ok")
    stop.set()
    wait_for(lambda: scripted.closed, timeout=5, what="the client closed")


def test_a_broker_that_does_not_answer_is_asked_again_not_fatal() -> None:
    scripted = Scripted([record(0, "S", False)], failures=3)
    stage, _, stop = start(scripted)
    assert stage.loaded.wait(5)
    assert isinstance(stage.table.get("S"), SignalSettings)
    assert scripted.failures == 0
    stop.set()


def test_an_absent_topic_is_ready_at_once_and_looked_for_again() -> None:
    scripted = Scripted([record(0, "S", False)], exists=False)
    stage, health, stop = start(scripted, recheck=0.05)
    assert stage.loaded.wait(5)
    assert stage.table.get("S") is None
    assert health.ready()[0]
    scripted.exists = True
    wait_for(lambda: stage.table.get("S") is not None, timeout=5, what="the topic followed")
    stop.set()


def test_partitions_added_later_are_read_too() -> None:
    scripted = Scripted([record(0, "S", True)])
    stage, _, stop = start(scripted, recheck=0.05)
    assert stage.loaded.wait(5)
    assert scripted.assigned == [(TOPIC, 0)]
    scripted.parts.append((TOPIC, 1))
    wait_for(lambda: scripted.assigned == [(TOPIC, 0), (TOPIC, 1)], timeout=5, what="assigned")
    stop.set()
