"""trade.closed in the Schema Registry wire format, against a real registry (Apicurio,
Confluent-compatible API, compatibility BACKWARD as on Confluent).

Events are produced as the platform's serializer does: the writer schema is registered
under the topic's subject (`<topic>-value`, TopicNameStrategy) with
`POST /subjects/{subject}/versions`, and each value is magic byte 0, the 4-byte id it
was given, then Avro written with that schema (`trace_stream.codec.registry.framed`).
"""

from __future__ import annotations

import copy
import json
from contextlib import closing
from typing import Any

import pytest

from devenv.apicurio import LocalRegistry
from devenv.tracker import Tracker
from tests.support import (
    canaries,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream import codec
from trace_stream.codec.registry import RegistryDecoder, framed
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.topics import layout
from trace_stream.settings import Settings

PERSONAL_EXTRA = "user_phone"  # a personal field the platform adds later
PLAIN_EXTRA = "venue"  # a non-personal one


def reader_schema() -> dict[str, Any]:
    """trace-stream's own schema, which the platform registered first."""
    schema: dict[str, Any] = json.loads((codec.schema_dir() / "trade_closed.avsc").read_text())
    return schema


def added_fields_schema() -> dict[str, Any]:
    """A newer platform schema with two fields added, each with a default (BACKWARD
    refuses an added field without one)."""
    schema = copy.deepcopy(reader_schema())
    schema["fields"].insert(
        5, {"name": PERSONAL_EXTRA, "type": ["null", "string"], "default": None, "doc": "personal"}
    )
    schema["fields"].append({"name": PLAIN_EXTRA, "type": "string", "default": "LMAX"})
    return schema


def with_added_fields(event: dict[str, Any]) -> dict[str, Any]:
    tag = event["trade_id"]
    return {**event, PERSONAL_EXTRA: f"+44 canary-phone-{tag}", PLAIN_EXTRA: f"canary-venue-{tag}"}


def subject(settings: Settings) -> str:
    return f"{settings.trace_input_topic}-value"


def test_the_decoder_resolves_what_the_registry_serves(schema_registry: LocalRegistry) -> None:
    name = "decoder-resolves-value"
    old = schema_registry.register(name, reader_schema())
    new = schema_registry.register(name, added_fields_schema())
    assert old != new
    with closing(RegistryDecoder(schema_registry.url)) as decode:
        assert decode(framed(old, reader_schema(), trade_event("T-1")))["trade_id"] == "T-1"
        decoded = decode(framed(new, added_fields_schema(), with_added_fields(trade_event("T-2"))))
    assert decoded["trade_id"] == "T-2"
    assert PERSONAL_EXTRA not in decoded
    assert PLAIN_EXTRA not in decoded


def test_an_id_the_registry_does_not_know_is_an_invalid_event(
    schema_registry: LocalRegistry,
) -> None:
    unknown = pytest.raises(InvalidEvent, match="schema id 987654 unknown")
    with closing(RegistryDecoder(schema_registry.url)) as decode, unknown:
        decode(framed(987654, reader_schema(), trade_event("T-1")))


def test_registry_framed_events_with_a_newer_schema_are_delivered_redacted(
    kafka_bootstrap: str,
    tracker: Tracker,
    schema_registry: LocalRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, schema_registry_url=schema_registry.url
    )
    schema_registry.register(subject(settings), reader_schema())
    schema_id = schema_registry.register(subject(settings), added_fields_schema())
    events = [with_added_fields(trade_event(f"T-{i}")) for i in range(3)]
    publish(
        settings,
        *(framed(schema_id, added_fields_schema(), e) for e in events),
        framed(987654, added_fields_schema(), events[0]),
    )
    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 3, what="three posts")
        letters = wait_for(
            lambda: read_topics(settings, layout(settings).dead_letter), what="the unknown id"
        )
    bodies = b"".join(r.body for r in tracker.requests())
    assert b"canary" not in bodies
    assert all(v.encode() not in bodies for e in events for v in canaries(e["trade_id"]).values())
    assert len(letters) == 1
    assert b"canary" not in (letters[0].value() or b"")
