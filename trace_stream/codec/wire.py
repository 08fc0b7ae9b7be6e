"""What travels on the internal topics: record builders, header names and their parsers.

    delivery record     key trade id, value `trace_delivery` Avro,
                        headers trace.adapters (comma-separated), trace.attempt,
                        trace.due (the value's due_at, integer milliseconds since
                        the epoch, as the value holds it)
    dead-letter record  key trade id (if any), value `dead_letter` Avro,
                        headers trace.reason, trace.adapter (if any),
                        trace.origin.{topic,partition,offset} (the trade.closed record),
                        trace.source.{topic,partition,offset} (the record dead-lettered)
    settings record     key signal id, value `signal_tracing` Avro (written by the platform)

Every stage and operations command writes and reads these through this module only,
so a header is named once and parsed the way it was written. The headers let a
reader route or find a record without decoding it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trace_stream.codec import avro
from trace_stream.core.clock import from_millis, to_millis
from trace_stream.core.messages import Headers, Message, OutRecord
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.pipeline import consent

ADAPTERS = "trace.adapters"
ATTEMPT = "trace.attempt"
DUE = "trace.due"
REASON = "trace.reason"
ADAPTER = "trace.adapter"
ORIGIN = "trace.origin"
SOURCE = "trace.source"

_DUE_DIGITS = 15
"""Milliseconds up to year 9999 have 15 digits: a longer header is not a time."""


def delivery_record(topic: str, delivery: TraceDelivery) -> OutRecord:
    """A delivery on the delay topic or a retry topic. Raises whatever the encoder
    raises for a value Avro cannot hold."""
    return OutRecord(
        topic,
        avro.encode_delivery(delivery),
        key=delivery.trace.trade_id.encode(),
        headers=[
            (ADAPTERS, ",".join(delivery.adapters).encode()),
            (ATTEMPT, str(delivery.attempt).encode()),
            (DUE, str(to_millis(delivery.due_at)).encode()),
        ],
    )


def targets(m: Message) -> tuple[str, ...] | None:
    """The adapters a delivery record is for, read from its header without decoding
    the value; None when the header is missing (the value then decides)."""
    raw = m.header(ADAPTERS)
    if raw is None:
        return None
    return tuple(raw.decode(errors="replace").split(","))


def due_at(m: Message) -> datetime | None:
    """When a delivery record is due, read from its header without decoding the value;
    None when the header is missing or not a time (the value then decides). The
    deliverer still holds the value to it: a value due later is never posted early."""
    raw = m.header(DUE)
    if raw is None or not raw.isdigit() or len(raw) > _DUE_DIGITS:
        return None
    try:
        return from_millis(int(raw))
    except OverflowError:  # past year 9999
        return None


def dead_letter_record(topic: str, letter: DeadLetter, source: Origin) -> OutRecord:
    """The dead letter with its reason, the trade.closed origin and the source record's
    coordinates in headers, so it can be found without decoding."""
    headers = [(REASON, letter.reason.encode())]
    headers += _coordinates(ORIGIN, letter.origin)
    headers += _coordinates(SOURCE, source)
    if letter.adapter:
        headers.append((ADAPTER, letter.adapter.encode()))
    key = letter.delivery.trace.trade_id.encode() if letter.delivery else None
    return OutRecord(topic, avro.encode_dead_letter(letter), key=key, headers=headers)


@dataclass(frozen=True)
class LetterHeaders:
    """A dead-letter record's headers, parsed."""

    reason: str | None
    adapter: str | None
    origin: Origin | None
    source: Origin | None


def letter_headers(headers: Headers) -> LetterHeaders:
    """Parse what `dead_letter_record` wrote; a header missing or malformed is None."""
    found = {k: v.decode(errors="replace") for k, v in headers}
    return LetterHeaders(
        reason=found.get(REASON),
        adapter=found.get(ADAPTER),
        origin=_origin(found, ORIGIN),
        source=_origin(found, SOURCE),
    )


def _coordinates(prefix: str, at: Origin) -> Headers:
    return [
        (f"{prefix}.topic", at.topic.encode()),
        (f"{prefix}.partition", str(at.partition).encode()),
        (f"{prefix}.offset", str(at.offset).encode()),
    ]


def _origin(found: Mapping[str, str], prefix: str) -> Origin | None:
    topic = found.get(f"{prefix}.topic")
    partition, offset = found.get(f"{prefix}.partition"), found.get(f"{prefix}.offset")
    if topic is None or partition is None or offset is None:
        return None
    try:
        return Origin(topic=topic, partition=int(partition), offset=int(offset))
    except ValueError:
        return None


def decode_signal_settings(value: bytes) -> dict[str, Any]:
    return avro.decode("signal_tracing", value)


parse_signal_settings = functools.partial(consent.parse, decode=decode_signal_settings)
"""One record of the settings topic -> (signal id, entry): `consent.parse` over Avro."""


def encode_signal_settings(settings: consent.SignalSettings) -> bytes:
    """The Avro value of a settings record (for tests, the demo and tools)."""
    record = {
        "signal_id": settings.signal_id,
        "tracing_enabled": settings.enabled,
        "tracing_adapters": sorted(settings.adapters),
        "updated_at": settings.updated_at,
    }
    return avro.encode("signal_tracing", record)
