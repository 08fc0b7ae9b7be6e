"""The retry ladder, dead letters, alerts and poison events, on a real broker."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devenv.tracker import Reply, Tracker
from tests.support import (
    Process,
    env_for,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream import codec
from trace_stream.core.records import DeadLetter
from trace_stream.core.topics import layout
from trace_stream.settings import Settings

FAST = "300ms,600ms,900ms,1200ms,1500ms"


def progress(tracker: Tracker, by: int) -> Callable[[], bool]:
    """True once the tracker has seen `by` more requests than now."""
    seen = len(tracker.requests())
    return lambda: len(tracker.requests()) >= seen + by


def dead_letters_when(settings: Settings, count: int) -> Callable[[], list[DeadLetter]]:
    """The dead letters once there are exactly `count` of them (else an empty list)."""

    def check() -> list[DeadLetter]:
        found = dead_letters(settings)
        return found if len(found) == count else []

    return check


def dead_letters(settings: Settings) -> list[DeadLetter]:
    return [
        codec.decode_dead_letter(m.value() or b"")
        for m in read_topics(settings, layout(settings).dead_letter)
    ]


def test_fails_twice_then_succeeds_spaced_by_the_tiers(kafka_bootstrap, webhook):
    webhook.respond(Reply(503), Reply(502))
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_retry_schedule="1s,2s,3s,4s,5s"
    )
    publish(settings, trade_event("T-flaky"))
    with running(settings) as service:
        pushed = service.metrics.pushed.labels("webhook")
        wait_for(lambda: pushed._value.get() == 1, what="the third attempt to succeed")
    first, second, third = webhook.requests()
    assert second.at - first.at >= 1.0
    assert third.at - second.at >= 2.0
    assert not dead_letters(settings)


def test_always_503_gives_six_attempts_one_dead_letter_one_alert(kafka_bootstrap, webhook, alerts):
    webhook.default = Reply(503)
    settings = make_settings(
        kafka_bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule=FAST,
        alert_webhook_url=f"{alerts.url}/hook",
    )
    publish(settings, trade_event("T-down"))
    with running(settings) as service:
        wait_for(lambda: alerts.requests(), timeout=30, what="the alert")
        letters = wait_for(lambda: dead_letters(settings), what="the dead letter")
        counted = service.metrics.alerts.labels("webhook", "retries_exhausted")._value.get()
    assert len(webhook.requests()) == 6
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == "retries_exhausted"
    assert letter.adapter == "webhook"
    assert letter.delivery is not None and letter.delivery.attempt == 6
    assert [e.detail for e in letter.delivery.errors] == ["HTTP 503"] * 6
    assert counted == 1
    assert len(alerts.requests()) == 1
    text = alerts.requests()[0].json()["text"]
    assert "T-down" in text and "webhook" in text and "6 attempt" in text


@pytest.mark.parametrize("retries", [0, 2, 7])
def test_the_retry_count_is_the_setting(kafka_bootstrap, webhook, retries):
    """TRACE_RETRY_MAX_ATTEMPTS retries after the first post, then the dead letter;
    retries past the last tier wait on the last tier again."""
    webhook.default = Reply(503)
    settings = make_settings(
        kafka_bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule=FAST,
        trace_retry_max_attempts=retries,
    )
    publish(settings, trade_event("T-down"))
    with running(settings):
        (letter,) = wait_for(dead_letters_when(settings, 1), timeout=60, what="the dead letter")
    assert letter.reason == "retries_exhausted"
    assert letter.delivery is not None and letter.delivery.attempt == retries + 1
    assert len(webhook.requests()) == retries + 1
    arrivals = [r.at for r in webhook.requests()]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    tiers = [0.3, 0.6, 0.9, 1.2, 1.5]
    assert all(gap >= tiers[min(i, 4)] for i, gap in enumerate(gaps)), gaps


def test_401_is_permanent_one_attempt(kafka_bootstrap, webhook, alerts):
    webhook.default = Reply(401)
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, alert_webhook_url=f"{alerts.url}/hook"
    )
    publish(settings, trade_event("T-auth"))
    with running(settings):
        wait_for(lambda: alerts.requests(), what="the alert")
        letters = wait_for(lambda: dead_letters(settings), what="the dead letter")
    assert len(webhook.requests()) == 1
    assert [(d.reason, d.detail) for d in letters] == [
        ("permanent_failure", "auth: HTTP 401 after 1 attempt(s)")
    ]


def test_429_retry_after_lands_on_the_first_tier_long_enough(kafka_bootstrap, webhook):
    webhook.respond(Reply(429, headers={"Retry-After": "1"}))
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_retry_schedule="200ms,2s,4s,6s,8s"
    )
    publish(settings, trade_event("T-throttled"))
    with running(settings):
        wait_for(lambda: webhook.requests(ok=True), what="the retried post")
    first, second = webhook.requests()
    assert second.at - first.at >= 2.0
    topics = layout(settings)
    by_topic = {t: len(read_topics(settings, t)) for t in topics.retries}
    assert by_topic == {
        topics.retries[0]: 0,
        topics.retries[1]: 1,
        **{t: 0 for t in topics.retries[2:]},
    }


def test_poison_events_are_dead_lettered_and_valid_ones_still_delivered(kafka_bootstrap, webhook):
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0, trace_max_in_flight=16)
    invalid = {
        "T-noid": {"trade_id": ""},
        "T-open": {"status": "open"},
        "T-time": {
            "opened_at": trade_event("x")["closed_at"],
            "closed_at": trade_event("x")["opened_at"],
        },
        "T-neg": {"entry_price": -3.0},
        "T-side": {"side": "SIDEWAYS"},
    }
    garbage = [b"\x00\x01\x02", b"{json: not avro}", b""]
    valid = [trade_event(f"T-{i:03d}") for i in range(100)]
    stream: list[dict[str, Any] | bytes] = [
        *valid,
        *garbage,
        *({**trade_event(k), **v} for k, v in invalid.items()),
    ]
    random.Random(7).shuffle(stream)
    publish(settings, *stream)
    with running(settings) as service:
        wait_for(lambda: len(webhook.requests(ok=True)) >= 100, timeout=60, what="100 deliveries")
        letters = wait_for(dead_letters_when(settings, 8), what="8 dead letters")
        assert not service.stop.is_set(), "the service must keep running"
    assert sorted({r.json()["trade_id"] for r in webhook.requests()}) == sorted(
        e["trade_id"] for e in valid
    )
    reasons = sorted(d.reason for d in letters)
    assert reasons == ["invalid_event"] * 5 + ["undecodable"] * 3
    details = " | ".join(d.detail for d in letters)
    for rule in (
        "trade_id: missing",
        "status: not closed",
        "closed_at: before opened_at",
        "entry_price: must be a number above 0",
        "side: not BUY or SELL",
    ):
        assert rule in details


def test_sigkill_while_routing_loses_nothing(kafka_bootstrap, tracker, tmp_path: Path):
    rng = random.Random(3)
    tracker.respond(*[Reply(503) if rng.random() < 0.4 else Reply(200) for _ in range(400)])
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_retry_schedule=FAST, trace_max_in_flight=8
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    trades = [trade_event(f"T-{i:03d}") for i in range(60)]
    wanted = {t["trade_id"] for t in trades}
    publish(settings, *trades)

    def settled() -> bool:
        delivered = {r.json()["trade_id"] for r in tracker.requests(ok=True)}
        dead = {d.delivery.trace.trade_id for d in dead_letters(settings) if d.delivery}
        return wanted <= delivered | dead

    for _ in range(2):  # kill it twice mid-flight ...
        proc = Process(env, tmp_path / "service.log")
        try:
            wait_for(progress(tracker, by=15), timeout=60, what="some progress")
        finally:
            proc.close()  # SIGKILL
    assert not settled(), "the kills came too late to test anything"
    proc = Process(env, tmp_path / "service.log")  # ... then let it finish
    try:
        wait_for(settled, timeout=90, what="every trade delivered or dead-lettered")
        assert proc.terminate() == 0
    finally:
        proc.close()


def test_rebalance_alone_posts_nothing_twice(kafka_bootstrap, webhook):
    webhook.default = Reply(200, delay=0.1)  # keep posts in flight while partitions move
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_topic_partitions=4, trace_max_in_flight=4
    )
    second = settings.model_copy(update={"trace_instance_id": settings.trace_instance_id + "-b"})
    first_batch = [trade_event(f"T-a{i:03d}") for i in range(60)]
    second_batch = [trade_event(f"T-b{i:03d}") for i in range(60)]
    publish(settings, *first_batch)
    with running(settings):
        wait_for(lambda: len(webhook.requests()) >= 10, what="the first replica to be busy")
        with running(second):  # joins the groups: partitions are revoked and reassigned
            assert len(webhook.requests()) < 60, "the rebalance must happen mid-stream"
            publish(settings, *second_batch)
            wait_for(lambda: len(webhook.requests()) >= 120, timeout=60, what="every trade")
        publish(settings, trade_event("T-after"))  # and back to one replica
        wait_for(lambda: len(webhook.requests()) >= 121, timeout=60, what="the last trade")
    ids = [r.json()["trade_id"] for r in webhook.requests()]
    assert sorted(ids) == sorted({*ids}), "a trade was posted twice"
    assert len(ids) == 121


def test_sigterm_with_a_hanging_post_stops_within_the_bound(
    kafka_bootstrap, tracker, tmp_path: Path
):
    tracker.respond(Reply(200, delay=20))  # the first post hangs far past the shutdown bound
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_shutdown_timeout_seconds=1
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces", WEBHOOK_TIMEOUT_SECONDS="60")
    publish(settings, trade_event("T-slow"))
    proc = Process(env, tmp_path / "service.log")
    try:
        wait_for(lambda: tracker.requests(), timeout=30, what="the hanging post")
        started = time.monotonic()
        assert proc.terminate(timeout=30) == 0
        assert time.monotonic() - started < 12
    finally:
        proc.close()
    # The abandoned post was not committed: a restart posts the trade again.
    proc = Process(env, tmp_path / "service.log")
    try:
        wait_for(lambda: len(tracker.requests()) >= 2, timeout=30, what="the post to be redone")
        assert proc.terminate() == 0
    finally:
        proc.close()


def test_revoked_token_pauses_the_adapter_instead_of_dead_lettering_everything(
    kafka_bootstrap, webhook, alerts
):
    webhook.default = Reply(401)
    settings = make_settings(
        kafka_bootstrap,
        trace_delay_minutes=0,
        trace_max_in_flight=1,
        trace_breaker_threshold=3,
        trace_breaker_cooldown_seconds=2,
        alert_webhook_url=f"{alerts.url}/hook",
    )
    trades = [trade_event(f"T-{i}") for i in range(8)]
    publish(settings, *trades)
    with running(settings) as service:
        paused = service.metrics.adapter_paused.labels("webhook")
        wait_for(lambda: paused._value.get() == 1, what="the breaker to open")
        assert len(webhook.requests()) == 3
        webhook.default = Reply(200)  # the token is fixed
        wait_for(lambda: len(webhook.requests(ok=True)) == 5, timeout=20, what="the rest delivered")
        assert paused._value.get() == 0
    assert len(dead_letters(settings)) == 3
    assert any("paused deliveries to webhook" in r.json()["text"] for r in alerts.requests())
