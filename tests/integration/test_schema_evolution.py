"""The platform evolves trade.closed's schema in a real registry (Apicurio, BACKWARD), and
the real service reads it from a real broker: what is dropped, what is dead-lettered
and why, and a registry outage that dead-letters nothing.

Each test registers under its own subject (`<its input topic>-value`) on the session's
registry, first with trace-stream's own schema, as the platform would have.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from devenv.apicurio import LocalRegistry, SchemaRejected
from devenv.tracker import Tracker
from tests.integration.test_registry_input import (
    PERSONAL_EXTRA,
    PLAIN_EXTRA,
    added_fields_schema,
    reader_schema,
    subject,
    with_added_fields,
)
from tests.support import canaries, make_settings, publish, read_topics, running, wait_for
from tests.support import trade_event as event
from trace_stream import codec
from trace_stream.codec.registry import framed
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import DeadLetter
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.settings import Settings

OUTAGE_SECONDS = 12


@pytest.fixture
def settings(kafka_bootstrap: str, schema_registry: LocalRegistry) -> Settings:
    return make_settings(
        kafka_bootstrap, trace_delay_minutes=0, schema_registry_url=schema_registry.url
    )


def without(*fields: str) -> dict[str, Any]:
    schema = copy.deepcopy(reader_schema())
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in fields]
    return schema


def retyped(field: str, avro_type: str) -> dict[str, Any]:
    schema = copy.deepcopy(reader_schema())
    for f in schema["fields"]:
        if f["name"] == field:
            f["type"] = avro_type
    return schema


def publish_in_order(settings: Settings, *values: bytes) -> None:
    """Into partition 0, so that offsets follow the order given (tests.support.publish
    takes a `partition` but does not pass it on)."""
    producer = Producer(settings.kafka_config())
    for value in values:
        producer.produce(OutRecord(settings.trace_input_topic, value, partition=0))
    producer.flush()


def posted(tracker: Tracker) -> list[str]:
    return [r.json()["trade_id"] for r in tracker.requests(ok=True)]


def dead_letters(settings: Settings) -> list[DeadLetter]:
    return [
        codec.decode_dead_letter(m.value() or b"")
        for m in read_topics(settings, layout(settings).dead_letter)
    ]


def test_added_fields_are_dropped_on_read_and_never_passed_on(
    settings: Settings, schema_registry: LocalRegistry, webhook: Tracker
) -> None:
    schema_registry.register(subject(settings), reader_schema())
    schema_id = schema_registry.register(subject(settings), added_fields_schema())
    events = [with_added_fields(event(f"T-{i}")) for i in range(4)]
    publish(settings, *(framed(schema_id, added_fields_schema(), e) for e in events))
    with running(settings):
        wait_for(lambda: len(posted(webhook)) == 4, what="four posts")
    for body in (r.json() for r in webhook.requests()):
        assert PERSONAL_EXTRA not in body
        assert PLAIN_EXTRA not in body
    internal = read_topics(settings, *layout(settings).internal)
    assert internal, "the delay topic holds the four deliveries"
    written = b"".join(r.body for r in webhook.requests())
    for m in internal:
        written += (m.value() or b"") + b"".join(
            h[1] for h in m.headers() or [] if isinstance(h[1], bytes)
        )
    assert b"canary" not in written, "an added field, or a personal one, was passed on"
    assert all(v.encode() not in written for e in events for v in canaries(e["trade_id"]).values())
    assert dead_letters(settings) == []


def test_removed_fields_with_a_default_are_read_and_never_passed_on(
    settings: Settings, schema_registry: LocalRegistry, webhook: Tracker
) -> None:
    """The fields this service never passes on have defaults in schemas/trade_closed.avsc
    (the personal ones, fees, currency), so the platform may drop them: BACKWARD accepts
    the new schema, and events written with it are read, the default filled in, and
    posted like any other."""
    name = subject(settings)
    schema_registry.register(name, reader_schema())
    leaner = without("fees", "user_email", "currency")
    dropped = schema_registry.register(name, leaner)
    trades = [
        {
            k: v
            for k, v in event(f"T-lean-{i}").items()
            if k not in {"fees", "user_email", "currency"}
        }
        for i in range(3)
    ]
    publish_in_order(settings, *(framed(dropped, leaner, e) for e in trades))
    with running(settings):
        wait_for(lambda: len(posted(webhook)) == 3, what="the leaner events posted")
    assert sorted(posted(webhook)) == [e["trade_id"] for e in trades]
    assert dead_letters(settings) == []
    bodies = b"".join(r.body for r in webhook.requests())
    assert b"fees" not in bodies
    assert b"user_email" not in bodies


def test_a_removed_field_the_reader_needs_is_dead_lettered(
    settings: Settings, schema_registry: LocalRegistry, webhook: Tracker
) -> None:
    """`instrument` has no default: this service needs it. BACKWARD lets the platform drop
    it anyway (it protects readers of the new schema, not this consumer); FORWARD, which
    the platform should set on this subject, refuses it. Forced through, each such event
    is dead-lettered with a reason and later good events still post."""
    name = subject(settings)
    schema_registry.register(name, reader_schema())
    schema_registry.set_compatibility("FORWARD", name)
    with pytest.raises(SchemaRejected) as refused:
        schema_registry.register(name, without("instrument"))
    assert refused.value.status == 409
    schema_registry.set_compatibility("BACKWARD", name)
    dropped = schema_registry.register(name, without("instrument"))
    good = schema_registry.register(name, reader_schema())
    bad = [{k: v for k, v in event(f"T-bad-{i}").items() if k != "instrument"} for i in range(3)]
    later = [event(f"T-good-{i}") for i in range(3)]
    publish_in_order(
        settings,
        *(framed(dropped, without("instrument"), e) for e in bad),
        *(framed(good, reader_schema(), e) for e in later),
    )
    with running(settings):
        wait_for(lambda: len(posted(webhook)) == 3, what="the later good events posted")
        wait_for(lambda: len(dead_letters(settings)) == 3, what="three dead letters")
    letters = dead_letters(settings)
    assert sorted(posted(webhook)) == [e["trade_id"] for e in later]
    assert sorted((d.reason, d.origin.offset) for d in letters) == [
        ("undecodable", i) for i in range(3)
    ]
    assert {d.detail for d in letters} == {"not readable as trade_closed (SchemaResolutionError)"}


def test_an_incompatible_schema_is_refused_and_if_forced_each_event_is_dead_lettered(
    settings: Settings, schema_registry: LocalRegistry, webhook: Tracker
) -> None:
    name = subject(settings)
    schema_registry.register(name, reader_schema())
    with pytest.raises(SchemaRejected) as refused:
        schema_registry.register(name, retyped("volume", "string"))
    assert refused.value.status == 409
    assert "volume" in str(refused.value) or "/fields/9/type" in str(refused.value)
    schema_registry.set_compatibility("NONE", name)
    forced = schema_registry.register(name, retyped("volume", "string"))
    good = schema_registry.register(name, reader_schema())
    trades = []
    for i in range(6):
        if i % 2:
            trades.append(framed(good, reader_schema(), event(f"T-good-{i}")))
        else:
            e = {**event(f"T-bad-{i}"), "volume": "1.0"}
            trades.append(framed(forced, retyped("volume", "string"), e))
    publish_in_order(settings, *trades)
    with running(settings):
        wait_for(lambda: len(posted(webhook)) == 3, what="the good events posted")
        wait_for(lambda: len(dead_letters(settings)) == 3, what="three dead letters")
    letters = dead_letters(settings)
    assert sorted(posted(webhook)) == ["T-good-1", "T-good-3", "T-good-5"]
    assert sorted(d.origin.offset for d in letters) == [0, 2, 4]
    assert {(d.reason, d.detail) for d in letters} == {
        ("undecodable", "not readable as trade_closed (SchemaResolutionError)")
    }


def test_a_registry_outage_dead_letters_nothing(
    settings: Settings, schema_registry: LocalRegistry, webhook: Tracker
) -> None:
    """The registry hangs (SIGSTOP) for OUTAGE_SECONDS while events written with a schema
    id the service has not fetched yet arrive: each fetch waits out its 10 s timeout and
    is retried; after the outage every event is posted, none dead-lettered."""
    name = subject(settings)
    first = schema_registry.register(name, reader_schema())
    newer = schema_registry.register(name, added_fields_schema())
    publish(settings, *(framed(first, reader_schema(), event(f"T-before-{i}")) for i in range(3)))
    during = [with_added_fields(event(f"T-during-{i}")) for i in range(6)]
    with running(settings) as service:
        wait_for(lambda: len(posted(webhook)) == 3, what="posts before the outage")
        schema_registry.freeze()
        try:
            frozen = time.monotonic()
            publish(settings, *(framed(newer, added_fields_schema(), e) for e in during))

            def outage_over() -> bool:
                assert len(posted(webhook)) == 3, "posted during the outage"
                assert service.failed is None
                return time.monotonic() - frozen >= OUTAGE_SECONDS

            wait_for(outage_over, timeout=OUTAGE_SECONDS + 5, what="the outage")
        finally:
            schema_registry.thaw()
        thawed = time.monotonic()
        wait_for(lambda: len(posted(webhook)) == 9, timeout=60, what="posts after the outage")
        caught_up = time.monotonic() - thawed
    assert sorted(posted(webhook))[-6:] == sorted(e["trade_id"] for e in during)
    assert dead_letters(settings) == []
    print(f"registry hung {OUTAGE_SECONDS} s; all posted {caught_up:.1f} s after it came back")
