"""trade.closed -> redact -> delay topic -> webhook, on a real broker and a real HTTP server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devenv.tracker import Reply, Tracker
from tests.support import (
    Process,
    canaries,
    env_for,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream import codec
from trace_stream.codec.wire import delivery_record
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.kafka.common import to_message
from trace_stream.pipeline.redact import ALLOWED_FIELDS, redact
from trace_stream.settings import Settings


def webhook_env(monkeypatch, tracker: Tracker, token: str = "tok-secret-canary") -> None:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    monkeypatch.setenv("WEBHOOK_AUTH_HEADER", "X-Api-Key")
    monkeypatch.setenv("WEBHOOK_AUTH_TOKEN", token)


def test_trade_is_posted_redacted_not_before_due(kafka_bootstrap, tracker, monkeypatch):
    webhook_env(monkeypatch, tracker)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    closed_at = datetime.now(UTC)
    publish(settings, trade_event("T-1", closed_at=closed_at))
    with running(settings):
        got = wait_for(lambda: tracker.requests("/traces"), what="the post")[0]
    assert got.at >= (closed_at + timedelta(seconds=1)).timestamp()
    assert got.headers["X-Api-Key"] == "tok-secret-canary"
    body = got.json()
    assert set(body) == set(ALLOWED_FIELDS)
    assert body["trade_id"] == "T-1"
    for value in canaries("T-1").values():
        assert value not in got.body.decode()


def test_not_opted_in_is_never_posted(kafka_bootstrap, tracker, monkeypatch):
    webhook_env(monkeypatch, tracker)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    publish(
        settings,
        trade_event("T-private", tracing_opt_in=False),
        trade_event("T-public"),
    )
    with running(settings) as service:
        wait_for(lambda: tracker.requests(), what="the opted-in post")
        skipped = service.metrics.events.labels("skipped_not_opted_in")
        wait_for(lambda: skipped._value.get() == 1, what="the skip to be counted")
    assert [r.json()["trade_id"] for r in tracker.requests()] == ["T-public"]


def test_internal_topics_hold_no_personal_value(kafka_bootstrap, tracker, monkeypatch):
    webhook_env(monkeypatch, tracker)
    tracker.respond(Reply(503), Reply(503))
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0, trace_retry_max_attempts=1)
    events = [trade_event(f"T-{i}") for i in range(5)]
    publish(settings, *events, b"\x00garbage-not-avro", trade_event("T-bad", exit_price=-1.0))
    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 5, what="5 successful posts")
    topics = layout(settings)
    records = read_topics(settings, *topics.internal)
    assert len([m for m in records if m.topic() == topics.dead_letter]) == 2  # garbage + invalid
    assert len([m for m in records if m.topic() == topics.retries[0]]) == 2  # the two 503s
    leaks = [
        (m.topic(), value)
        for m in records
        for e in [*events, trade_event("T-bad")]
        for value in canaries(e["trade_id"]).values()
        if value.encode() in (m.value() or b"") + b"".join(v for _, v in to_message(m).headers)
    ]
    assert not leaks


def test_restart_after_post_before_commit_loses_nothing(kafka_bootstrap, tracker, tmp_path: Path):
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    first = Process(env, tmp_path / "service.log")
    # Kill the service the moment the tracker has the post: before any commit can follow.
    tracker.on_request = lambda _: first.kill()
    publish(settings, trade_event("T-crash"))
    try:
        wait_for(lambda: first.proc.poll() is not None, timeout=60, what="the first post and kill")
    finally:
        first.close()
    tracker.on_request = None
    second = Process(env, tmp_path / "service.log")
    try:
        wait_for(lambda: len(tracker.requests()) >= 2, timeout=60, what="the post to be redone")
        assert second.terminate() == 0
    finally:
        second.close()
    keys = {r.headers["Idempotency-Key"] for r in tracker.requests()}
    assert {r.json()["trade_id"] for r in tracker.requests()} == {"T-crash"}
    assert len(keys) == 1, "a redone post must carry the same idempotency key"


def delay_record(settings: Settings, trade_id: str, due: datetime, partition: int) -> OutRecord:
    """A delivery written straight to the delay topic, as an older or foreign writer might."""
    delivery = TraceDelivery(
        trace=redact(trade_event(trade_id)),
        adapters=("webhook",),
        due_at=due,
        origin=Origin(topic=settings.trace_input_topic, partition=0, offset=0),
    )
    return replace(delivery_record(layout(settings).delay, delivery), partition=partition)


def test_a_record_not_yet_due_holds_back_no_record_behind_it(kafka_bootstrap, tracker, monkeypatch):
    webhook_env(monkeypatch, tracker)
    settings = make_settings(kafka_bootstrap, trace_topic_partitions=2)
    now = datetime.now(UTC)
    held_until = now + timedelta(seconds=6)
    producer = Producer(settings.kafka_config())
    producer.produce(delay_record(settings, "T-later", held_until, 0))  # not due: read first
    producer.produce(delay_record(settings, "T-behind", now, 0))  # due, behind it
    producer.produce(delay_record(settings, "T-other", now, 1))  # due, other partition
    producer.flush()
    with running(settings):
        wait_for(lambda: len(tracker.requests()) == 2, timeout=20, what="the two due posts")
        assert {r.json()["trade_id"] for r in tracker.requests()} == {"T-behind", "T-other"}
        assert datetime.now(UTC) < held_until, "the due records waited for the later one"
        wait_for(lambda: len(tracker.requests()) == 3, timeout=20, what="the later post")
    at = {r.json()["trade_id"]: r.at for r in tracker.requests()}
    assert at["T-later"] >= held_until.timestamp(), "posted before its due time"


def test_a_delivery_due_beyond_any_valid_schedule_is_dead_lettered_not_held(
    kafka_bootstrap, tracker, monkeypatch
):
    """No valid event is due later than delay + clock skew (+ the longest retry tier): a
    delivery due ten years ahead would hold back its partition's commits until then."""
    webhook_env(monkeypatch, tracker)
    settings = make_settings(kafka_bootstrap, trace_topic_partitions=1)
    now = datetime.now(UTC)
    producer = Producer(settings.kafka_config())
    producer.produce(delay_record(settings, "T-far", now + timedelta(days=3650), 0))
    producer.produce(delay_record(settings, "T-due", now, 0))
    producer.flush()
    dlq = layout(settings).dead_letter
    with running(settings):
        wait_for(lambda: tracker.requests(ok=True), what="the due post")
        letters = wait_for(lambda: read_topics(settings, dlq), what="the dead letter")
    (letter,) = [codec.decode_dead_letter(m.value() or b"") for m in letters]
    assert letter.reason == "due_out_of_range"
    assert letter.adapter == "webhook"
    assert [r.json()["trade_id"] for r in tracker.requests()] == ["T-due"]
