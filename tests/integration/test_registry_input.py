"""The service reading trade.closed framed for a Schema Registry, with a newer schema."""

from __future__ import annotations

from devenv.registry import Registry
from tests.support import (
    canaries,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from tests.unit.test_registry import evolved_schema
from trace_stream.registry import framed
from trace_stream.topics import layout


def test_registry_framed_events_with_a_newer_schema_are_delivered_redacted(
    kafka_bootstrap, tracker, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    with Registry() as registry:
        schema_id = registry.register(evolved_schema())
        settings = make_settings(
            kafka_bootstrap, trace_delay_minutes=0, schema_registry_url=registry.url
        )
        events = [
            {**trade_event(f"T-{i}"), "user_phone": f"+44 canary-phone-{i}", "venue": "X"}
            for i in range(3)
        ]
        publish(
            settings,
            *(framed(schema_id, evolved_schema(), e) for e in events),
            framed(77, evolved_schema(), events[0]),
        )
        with running(settings):
            wait_for(lambda: len(tracker.requests(ok=True)) == 3, what="three posts")
            letters = wait_for(
                lambda: read_topics(settings, layout(settings).dead_letter), what="the unknown id"
            )
    bodies = b"".join(r.body for r in tracker.requests())
    assert b"canary-phone" not in bodies
    assert all(v.encode() not in bodies for e in events for v in canaries(e["trade_id"]).values())
    assert len(letters) == 1
    assert b"canary" not in (letters[0].value() or b"")
