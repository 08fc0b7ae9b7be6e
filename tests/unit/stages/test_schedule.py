"""The scheduler stage with fake Kafka clients: one record's failure is that record's
dead letter, never the stage's crash."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from tests.support import trade_event, unencodable
from trace_stream import codec
from trace_stream.core.messages import Message, OutRecord
from trace_stream.core.topics import Topics
from trace_stream.stages.schedule import Scheduler
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class FakeConsumer:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        batch, self.messages = self.messages[:max_messages], self.messages[max_messages:]
        return batch

    def group_metadata(self) -> None:
        return None

    def mark_committed(self, offsets: dict[tuple[str, int], int]) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def commit(self, records: list[OutRecord], offsets: dict[Any, int], _: Any) -> None:
        self.records += records
        self.offsets.update(offsets)


def stage(messages: list[Message], producer: FakeProducer, metrics: Metrics) -> Scheduler:
    return Scheduler(
        consumer_factory=lambda _: cast(Any, FakeConsumer(messages)),
        producer=cast(Any, producer),
        topics=Topics(input="in", delay="delay", retries=(), dead_letter="dlq"),
        enabled_adapters=frozenset({"webhook"}),
        delay=timedelta(minutes=5),
        clock=lambda: NOW,
        metrics=metrics,
        health=Health(["schedule"]),
    )


def message(offset: int, trade_id: str) -> Message:
    value = codec.encode("trade_closed", trade_event(trade_id, closed_at=NOW))
    return Message("in", 0, offset, None, value, [])


def test_a_delivery_that_cannot_be_encoded_is_dead_lettered_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    unencodable(monkeypatch, "T-odd")
    producer, metrics = FakeProducer(), Metrics(CollectorRegistry())
    s = stage([message(0, "T-1"), message(1, "T-odd"), message(2, "T-2")], producer, metrics)
    assert s.step(timeout=0) == 3
    assert [r.topic for r in producer.records] == ["delay", "dlq", "delay"]
    assert producer.offsets == {("in", 0): 3}
    letter = codec.decode_dead_letter(producer.records[1].value)
    assert letter.reason == "unprocessable"
    assert letter.detail == "OverflowError while encoding the delivery"
    assert letter.origin.offset == 1 and letter.redacted and "T-odd" in letter.redacted
    assert dict(producer.records[1].headers)["trace.origin.offset"] == b"1"
    assert metrics.events.labels("unprocessable")._value.get() == 1
    assert metrics.dead_lettered.labels("none", "unprocessable")._value.get() == 1
    assert metrics.events.labels("scheduled")._value.get() == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["event dead-lettered"]
    assert "canary" not in caplog.text
    caplog.clear()  # the error was logged on purpose


def test_an_event_no_rule_foresaw_is_logged_as_an_error_and_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer, metrics = FakeProducer(), Metrics(CollectorRegistry())
    s = stage([message(0, "T-1")], producer, metrics)
    s._decode = lambda _: cast(Any, 42)  # a decoder's bug: not a record
    assert s.step(timeout=0) == 1
    letter = codec.decode_dead_letter(producer.records[0].value)
    assert (letter.reason, letter.detail) == ("unprocessable", "AttributeError while validating")
    assert metrics.dead_lettered.labels("none", "unprocessable")._value.get() == 1
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    caplog.clear()  # the error was logged on purpose
