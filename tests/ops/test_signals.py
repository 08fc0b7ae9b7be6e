"""The signal settings topic from the operations side, on a real broker: `signals show`,
`topics ensure --signal-settings`, and replays and redrives that meet a withdrawal."""

from __future__ import annotations

import json

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
from trace_stream.core.topics import layout

from .conftest import Cli


def test_signals_show_prints_what_the_service_would_use(kafka_bootstrap: str, cli: Cli) -> None:
    settings = make_settings(kafka_bootstrap, trace_enabled_adapters="webhook,file")
    cli.use(settings, WEBHOOK_ENDPOINT="http://127.0.0.1:9/x", FILE_EXPORT_DIR="/tmp/unused")
    absent = cli("signals", "show", "SIG-S")
    assert absent.code == 0, absent.err
    assert "does not exist: each event's own opt-in and trackers decide" in absent.out

    create_signal_settings_topic(settings)
    publish_signal(settings, "SIG-S", True, ("webhook", "file"))
    publish_signal(settings, "SIG-S", True, ("file",))  # the latest wins
    publish_signal(settings, "SIG-OTHER", False, ())
    shown = cli("signals", "show", "SIG-S")
    assert shown.code == 0, shown.err
    first, *rest = shown.out.splitlines()
    assert first.startswith("SIG-S: tracing enabled, trackers [file], updated 20")
    assert rest == [
        "  webhook: not posted: adapter_removed",
        "  file: posted (if its event opted in to it)",
    ]
    as_json = json.loads(cli("signals", "show", "SIG-OTHER", "--json").out)
    assert as_json["entry"]["tracing_enabled"] is False
    assert as_json["adapters"] == {"webhook": "consent_withdrawn", "file": "consent_withdrawn"}

    publish_signal(settings, "SIG-S", None)  # tombstone
    gone = cli("signals", "show", "SIG-S")
    assert "SIG-S: no entry in" in gone.out
    assert "webhook: posted" in gone.out

    publish_signal(settings, "SIG-S", value=b"junk")
    bad = cli("signals", "show", "SIG-S")
    assert "latest record unreadable" in bad.out
    assert "webhook: dead-lettered: signal_settings_unreadable" in bad.out


def test_topics_ensure_creates_the_settings_topic_compacted_when_asked(
    kafka_bootstrap: str, cli: Cli
) -> None:
    settings = make_settings(kafka_bootstrap, create_topics=False)
    cli.use(settings)
    topic = settings.trace_signal_settings_topic
    plain = cli("topics", "ensure")
    assert plain.code == 0, plain.err
    assert topic not in plain.out, "created only when asked"
    described = cli("topics", "describe")
    assert f"{topic}" in described.out and "missing (optional" in described.out

    asked = cli("topics", "ensure", "--signal-settings")
    assert asked.code == 0, asked.err
    assert any(line.split() == [topic, "created"] for line in asked.out.splitlines())
    again = cli("topics", "describe")
    (line,) = [line for line in again.out.splitlines() if line.startswith(topic)]
    assert "cleanup.policy=compact" in line


def test_replay_and_redrive_meet_the_withdrawal(
    kafka_bootstrap: str, tracker: Tracker, cli: Cli
) -> None:
    """A trade posted once, then withdrawn: replaying it posts nothing. A trade
    dead-lettered, then withdrawn: redriving it posts nothing either."""
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    create_signal_settings_topic(settings)
    tracker.respond(Reply(200), Reply(401))
    publish(settings, trade_event("T-posted", signal_id="SIG-P"))
    with running(settings):
        wait_for(lambda: len(tracker.requests()) == 1, what="the first post")
    publish(settings, trade_event("T-refused", signal_id="SIG-P"))
    with running(settings):
        dead = layout(settings).dead_letter
        wait_for(lambda: len(read_topics(settings, dead)) == 1, what="the dead letter")
    assert [r.status for r in tracker.requests()] == [200, 401]

    publish_signal(settings, "SIG-P", False, ())
    replayed = cli("replay", "--from", "0")
    assert "scheduled 2" in replayed.out, replayed.text  # both trades: two deliveries
    assert "redriven 1" in cli("dlq", "redrive").out
    with running(settings) as service:
        withdrawn = service.metrics.withdrawn.labels("webhook", "consent_withdrawn")
        wait_for(lambda: withdrawn._value.get() == 3, what="replays and the redrive withdrawn")
    assert len(tracker.requests()) == 2, "a replay or a redrive posted a withdrawn trade"
