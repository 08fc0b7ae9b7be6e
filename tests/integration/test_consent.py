"""Consent honoured until the moment of posting: the signal settings topic on a real
broker, the real service, a real tracker."""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime, timedelta

import confluent_kafka

from devenv.tracker import Reply, Tracker
from tests.support import (
    create_signal_settings_topic,
    make_settings,
    publish,
    publish_signal,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream import codec
from trace_stream.codec.wire import encode_signal_settings as encode
from trace_stream.core.topics import layout
from trace_stream.pipeline.consent import SignalSettings, Unreadable
from trace_stream.service import app


def posted(tracker: Tracker) -> list[str]:
    return [r.json()["trade_id"] for r in tracker.requests()]


def enabled(service: app.Service, signal_id: str) -> bool | None:
    """The table's `tracing_enabled` for a signal; None without a readable entry."""
    entry = service.signals.get(signal_id)
    return entry.enabled if isinstance(entry, SignalSettings) else None


def counter(service: app.Service, adapter: str, reason: str) -> float:
    return float(service.metrics.withdrawn.labels(adapter, reason)._value.get())


def test_consent_withdrawn_between_close_and_due_is_not_posted(kafka_bootstrap, webhook, caplog):
    delay = timedelta(seconds=5)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=delay.total_seconds() / 60)
    create_signal_settings_topic(settings)
    publish_signal(settings, "SIG-W", True, ("webhook",))
    closed = datetime.now(UTC)
    publish(
        settings,
        trade_event("T-withdrawn", signal_id="SIG-W", closed_at=closed),
        trade_event("T-no-entry", signal_id="SIG-N", closed_at=closed),
    )
    with running(settings) as service:
        scheduled = service.metrics.events.labels("scheduled")
        wait_for(lambda: scheduled._value.get() == 2, what="both trades scheduled")
        publish_signal(settings, "SIG-W", False, ())
        wait_for(lambda: enabled(service, "SIG-W") is False, what="the withdrawal in the table")
        assert datetime.now(UTC) < closed + delay, "precondition: withdrawn before due"
        wait_for(
            lambda: counter(service, "webhook", "consent_withdrawn") == 1,
            what="the withdrawn trade to be counted",
        )
        wait_for(lambda: posted(webhook) == ["T-no-entry"], what="the other signal's trade")
        pushed = service.metrics.pushed.labels("webhook")._value.get()
    assert pushed == 1
    assert posted(webhook) == ["T-no-entry"], "a trade of a withdrawn signal was posted"
    assert not read_topics(settings, layout(settings).dead_letter), "withdrawn is no failure"
    said = [r for r in caplog.records if r.getMessage() == "not posted: consent withdrawn"]
    assert [(r.signal_id, r.trade_id, r.adapter) for r in said] == [
        ("SIG-W", "T-withdrawn", "webhook")
    ]


def test_table_is_loaded_before_the_first_post_and_a_removed_adapter_is_skipped(
    kafka_bootstrap, webhook, monkeypatch, tmp_path
):
    monkeypatch.setenv("FILE_EXPORT_TYPE", "local")
    monkeypatch.setenv("FILE_EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv("FILE_EXPORT_BATCH_MAX_AGE_SECONDS", "0.2")
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_enabled_adapters="webhook,file"
    )
    create_signal_settings_topic(settings)
    # Many other signals first, so loading takes a while; then the two that matter.
    for i in range(300):
        publish_signal(settings, f"SIG-OTHER-{i}", i % 2 == 0, ("webhook",))
    publish_signal(settings, "SIG-FILE-ONLY", True, ("file",))
    publish_signal(settings, "SIG-OFF", False, ())
    publish_signal(settings, "SIG-GONE", False, ())
    publish_signal(settings, "SIG-GONE", None)  # tombstone: the event's own flags decide
    both = ["webhook", "file"]
    publish(
        settings,
        trade_event("T-file-only", signal_id="SIG-FILE-ONLY", tracing_adapters=both),
        trade_event("T-off", signal_id="SIG-OFF", tracing_adapters=both),
        trade_event("T-gone", signal_id="SIG-GONE", tracing_adapters=both),
    )
    with running(settings) as service:
        wait_for(
            lambda: (
                counter(service, "webhook", "adapter_removed") == 1
                and counter(service, "webhook", "consent_withdrawn") == 1
                and counter(service, "file", "consent_withdrawn") == 1
            ),
            what="the withdrawn deliveries",
        )

        def exported() -> str:
            return "".join(f.read_text() for f in (tmp_path / "export").rglob("*.jsonl"))

        # The two may sit in different partitions, so in different files.
        wait_for(
            lambda: "T-file-only" in exported() and "T-gone" in exported(),
            what="both allowed trades exported",
        )
        wait_for(lambda: posted(webhook) == ["T-gone"], what="the tombstoned signal's post")
        assert len(service.signals) == 300 + 2
    assert "T-off" not in exported()


def test_a_withdrawal_stops_the_retries(kafka_bootstrap, webhook):
    webhook.respond(Reply(503))
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_retry_schedule="2s,2s,2s,2s,2s"
    )
    create_signal_settings_topic(settings)
    publish(settings, trade_event("T-retry", signal_id="SIG-R"))
    with running(settings) as service:
        wait_for(lambda: len(webhook.requests()) == 1, what="the first, failing attempt")
        publish_signal(settings, "SIG-R", False, ())
        wait_for(
            lambda: counter(service, "webhook", "consent_withdrawn") == 1,
            timeout=15,
            what="the retry to be withdrawn",
        )
    assert len(webhook.requests()) == 1, "a retry was posted after consent was withdrawn"
    assert not read_topics(settings, layout(settings).dead_letter)


def test_unreadable_settings_dead_letter_the_trade_until_fixed(kafka_bootstrap, webhook):
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    create_signal_settings_topic(settings)
    publish_signal(settings, "SIG-BAD", value=b"\x00not avro")
    publish(settings, trade_event("T-unknown", signal_id="SIG-BAD"))
    with running(settings) as service:
        invalid = service.metrics.signal_settings_invalid.labels("unreadable")
        wait_for(lambda: invalid._value.get() == 1, what="the unreadable record counted")
        dead = service.metrics.dead_lettered.labels("webhook", "signal_settings_unreadable")
        wait_for(lambda: dead._value.get() == 1, what="the dead letter")
        assert isinstance(service.signals.get("SIG-BAD"), Unreadable)
        publish_signal(settings, "SIG-BAD", True, ("webhook",))
        wait_for(
            lambda: isinstance(service.signals.get("SIG-BAD"), SignalSettings),
            what="the fixed record",
        )
    assert not webhook.requests()
    (letter,) = [
        codec.decode_dead_letter(m.value() or b"")
        for m in read_topics(settings, layout(settings).dead_letter)
    ]
    assert letter.reason == "signal_settings_unreadable"
    assert letter.delivery is not None and letter.delivery.trace.trade_id == "T-unknown"
    assert "\\x00" not in letter.detail and "not avro" not in letter.detail


def test_a_change_takes_effect_within_a_second(kafka_bootstrap, webhook, capsys):
    """How soon a committed change reaches the table the deliverers consult: from the
    producer's acknowledgement to the entry, over 20 changes."""
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    create_signal_settings_topic(settings)
    with running(settings) as service:
        wait_for(service.health.ready, what="the service ready")
        seconds = []
        for i in range(20):
            enabled = i % 2 == 0
            publish_signal(settings, "SIG-L", enabled, ("webhook",))
            acked = time.monotonic()
            while True:
                entry = service.signals.get("SIG-L")
                if isinstance(entry, SignalSettings) and entry.enabled == enabled:
                    break
                assert time.monotonic() - acked < 5, "change not seen within 5 s"
                time.sleep(0.002)
            seconds.append(time.monotonic() - acked)
    with capsys.disabled():
        print(
            f"\nsettings change -> table: median {statistics.median(seconds) * 1000:.0f} ms, "
            f"max {max(seconds) * 1000:.0f} ms over {len(seconds)} changes"
        )
    assert max(seconds) < 1.0


def test_without_the_topic_the_events_flags_decide_said_once(kafka_bootstrap, webhook, caplog):
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)  # topic not created
    publish(settings, trade_event("T-1", signal_id="SIG-X"))
    with running(settings) as service:
        wait_for(lambda: posted(webhook) == ["T-1"], what="the post")
        assert service.health.ready()[0]
    said = [r for r in caplog.records if "signal settings topic not found" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING


def test_consent_re_enabled_before_the_due_time_is_posted_on_time(kafka_bootstrap, webhook):
    delay = timedelta(seconds=4)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=delay.total_seconds() / 60)
    create_signal_settings_topic(settings)
    closed = datetime.now(UTC)
    publish(settings, trade_event("T-back", signal_id="SIG-B", closed_at=closed))
    with running(settings) as service:
        publish_signal(settings, "SIG-B", False, ())
        wait_for(lambda: enabled(service, "SIG-B") is False, what="the withdrawal")
        publish_signal(settings, "SIG-B", True, ("webhook",))
        wait_for(lambda: enabled(service, "SIG-B") is True, what="the re-enabling")
        assert datetime.now(UTC) < closed + delay, "precondition: re-enabled before due"
        wait_for(lambda: posted(webhook) == ["T-back"], what="the post")
        assert counter(service, "webhook", "consent_withdrawn") == 0
    (request,) = webhook.requests()
    late = request.at - (closed + delay).timestamp()
    assert 0 <= late < 2, f"posted {late:+.2f} s after its due time"


def test_ready_only_once_a_large_table_is_loaded(kafka_bootstrap, webhook):
    """20,000 signals on the topic: /readyz never says ready with the table part-loaded."""
    count = 20_000
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    topic = create_signal_settings_topic(settings)
    producer = confluent_kafka.Producer({**settings.kafka_config(), "linger.ms": 20})
    now = datetime.now(UTC)
    for i in range(count):
        entry = SignalSettings(f"SIG-{i}", i % 2 == 0, frozenset({"webhook"}), now)
        producer.produce(topic, encode(entry), key=entry.signal_id.encode())
        producer.poll(0)
    assert producer.flush(30) == 0
    publish(
        settings, trade_event("T-odd", signal_id="SIG-1"), trade_event("T-even", signal_id="SIG-2")
    )
    with running(settings) as service:
        seen = []
        while not (ready := service.health.ready()[0]):
            seen.append(len(service.signals))
            assert len(seen) < 60_000, "never ready"
            time.sleep(0.001)
        assert ready and len(service.signals) == count
        assert any(n < count for n in seen), "never saw the table loading: nothing was tested"
        wait_for(lambda: posted(webhook) == ["T-even"], what="the post of the enabled signal")
        wait_for(lambda: counter(service, "webhook", "consent_withdrawn") == 1, what="T-odd")
