"""codec.wire: every record the service writes on an internal topic reads back as it
was written, value and headers, through the same module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trace_stream import codec
from trace_stream.codec import wire
from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.messages import Message, OutRecord
from trace_stream.core.records import AttemptError, Origin, Trace, TraceDelivery
from trace_stream.pipeline.consent import SignalSettings

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
ORIGIN = Origin(topic="trade.closed", partition=2, offset=41)
TRACE = Trace(
    trade_id="T-1",
    signal_id="SIG-1",
    instrument="EURUSD",
    side="BUY",
    volume=1.5,
    entry_price=1.08,
    exit_price=1.09,
    opened_at=AT,
    closed_at=AT,
    profit_loss=15.0,
)
DELIVERY = TraceDelivery(
    trace=TRACE,
    adapters=("file", "webhook"),
    attempt=2,
    due_at=AT,
    first_attempt_at=AT,
    errors=(AttemptError(at=AT, adapter="webhook", reason="timeout", detail="no outcome"),),
    origin=ORIGIN,
)


def read(r: OutRecord, offset: int = 7) -> Message:
    return Message(r.topic, 0, offset, r.key, r.value, r.headers)


def test_a_delivery_record_round_trips() -> None:
    record = wire.delivery_record("trace.retry.30s", DELIVERY)
    assert record.topic == "trace.retry.30s"
    assert record.key == b"T-1"
    assert codec.decode_delivery(record.value) == DELIVERY
    assert wire.targets(read(record)) == ("file", "webhook")
    assert dict(record.headers)[wire.ATTEMPT] == b"2"
    assert wire.due_at(read(record)) == AT


def test_the_due_header_holds_the_values_due_time_to_the_millisecond() -> None:
    # The value holds milliseconds (Avro timestamp-millis); the header says the same.
    late = DELIVERY.model_copy(update={"due_at": AT + timedelta(microseconds=1999)})
    record = wire.delivery_record("trace.delay", late)
    assert wire.due_at(read(record)) == codec.decode_delivery(record.value).due_at
    assert wire.due_at(read(record)) == AT + timedelta(milliseconds=1)


@pytest.mark.parametrize("raw", [b"", b"-5", b"1.5", b"soon", b"9" * 16, b"\xff"])
def test_a_malformed_due_header_leaves_it_to_the_value(raw: bytes) -> None:
    record = wire.delivery_record("trace.delay", DELIVERY)
    headers = [(k, raw if k == wire.DUE else v) for k, v in record.headers]
    assert wire.due_at(Message(record.topic, 0, 0, record.key, record.value, headers)) is None


def test_a_record_without_the_adapters_header_leaves_it_to_the_value() -> None:
    record = wire.delivery_record("trace.delay", DELIVERY)
    bare = Message(record.topic, 0, 0, record.key, record.value, [])
    assert wire.targets(bare) is None


@pytest.mark.parametrize("with_delivery", [True, False])
def test_a_dead_letter_record_round_trips(with_delivery: bool) -> None:
    source = Origin(topic="trace.retry.1h", partition=5, offset=9)
    letter = dead_letter(
        "retries_exhausted" if with_delivery else "invalid_event",
        "server_error: HTTP 503 after 6 attempt(s)",
        origin=ORIGIN,
        at=AT,
        adapter="webhook" if with_delivery else None,
        delivery=DELIVERY if with_delivery else None,
        redacted=None if with_delivery else '{"trade_id": "T-1"}',
    )
    record = wire.dead_letter_record("trace.dlq", letter, source)
    assert codec.decode_dead_letter(record.value) == letter
    assert record.key == (b"T-1" if with_delivery else None)
    parsed = wire.letter_headers(record.headers)
    assert parsed == wire.LetterHeaders(
        reason=letter.reason,
        adapter=letter.adapter,
        origin=ORIGIN,
        source=source,
    )


def test_malformed_coordinates_parse_as_missing() -> None:
    headers = [("trace.origin.topic", b"t"), ("trace.origin.partition", b"x")]
    assert wire.letter_headers(headers).origin is None


def test_a_settings_record_round_trips() -> None:
    settings = SignalSettings("SIG-1", True, frozenset({"webhook", "file"}), AT, "t[0]@1")
    value = wire.encode_signal_settings(settings)
    assert wire.parse_signal_settings(b"SIG-1", value, where="t[0]@1") == ("SIG-1", settings)
    assert wire.parse_signal_settings(b"SIG-1", None) == ("SIG-1", None)
