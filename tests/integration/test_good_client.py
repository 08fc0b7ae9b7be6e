"""Being a good client of every tracker, on a real broker against real HTTP
trackers: jittered retries, a rate limit per adapter, a Retry-After that pauses the
whole adapter, and a 410 Gone that stops the adapter but keeps its trades."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from devenv.tracker import Received, Reply, Tracker
from tests.support import make_settings, publish, read_topics, running, trade_event, wait_for
from trace_stream import codec
from trace_stream.core.topics import layout
from trace_stream.kafka import Reader
from trace_stream.settings import Settings


def dead_letters(settings: Settings) -> list[object]:
    return list(read_topics(settings, layout(settings).dead_letter))


def peak_per_second(requests: list[Received]) -> int:
    """The most requests received within any one second (a sliding window, so the
    figure does not depend on where the wave falls across second boundaries)."""
    times = sorted(r.at for r in requests)
    start, peak = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


# -- 1. jitter, never early ---------------------------------------------------------------

HERD = 1000
TIER = 10.0


def herd(bootstrap: str, tracker: Tracker, jitter: float) -> tuple[int, int, float, float, float]:
    """1,000 trades due in the same instant, each failing once (503) then accepted.
    Returns the peak per second of the first attempts and of the retries, how long
    each wave lasted, and the spread of the retries' waits beyond their tier; asserts
    that no retry came before its tier."""
    failed: set[str] = set()
    lock = threading.Lock()

    def first_fails(path: str, body: bytes) -> Reply:
        trade_id = body.split(b'"trade_id":"', 1)[1].split(b'"', 1)[0].decode()
        with lock:
            if trade_id in failed:
                return Reply(200)
            failed.add(trade_id)
            return Reply(503)

    tracker.decide = first_fails
    settings = make_settings(
        bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule=f"{TIER:.0f}s",
        trace_retry_jitter=jitter,
        trace_max_in_flight=128,
    )
    due = datetime.now(UTC) + timedelta(seconds=8)  # once the service has started
    publish(settings, *(trade_event(f"T-{i:04d}", closed_at=due) for i in range(HERD)))
    with running(settings) as service:
        pushed = service.metrics.pushed.labels("webhook")
        wait_for(lambda: pushed._value.get() == HERD, timeout=60, what="every retry accepted")
    first = {r.json()["trade_id"]: r for r in tracker.requests(ok=False)}
    retries = {r.json()["trade_id"]: r for r in tracker.requests(ok=True)}
    assert len(first) == len(retries) == HERD
    early = [t for t in first if retries[t].at - first[t].at < TIER]
    assert not early, f"{len(early)} retries came back before their tier"
    fails, oks = [r.at for r in first.values()], [r.at for r in retries.values()]
    beyond = sorted(retries[t].at - first[t].at - TIER for t in first)
    return (
        peak_per_second(list(first.values())),
        peak_per_second(list(retries.values())),
        max(fails) - min(fails),
        max(oks) - min(oks),
        beyond[-HERD // 20] - beyond[HERD // 20],  # 5th to 95th percentile
    )


def test_a_herd_of_retries_is_spread_by_jitter_and_none_comes_back_early(kafka_bootstrap):
    jitter = 0.15
    with Tracker() as tracker, pytest.MonkeyPatch.context() as env:
        env.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
        fail_peak, retry_peak, fail_span, retry_span, spread = herd(
            kafka_bootstrap, tracker, jitter
        )
    print(
        f"\nherd of {HERD}, tier {TIER:.0f}s, jitter {jitter}: failures peak {fail_peak}/s "
        f"over {fail_span:.2f}s; retries peak {retry_peak}/s over {retry_span:.2f}s; "
        f"waits beyond the tier spread {spread:.2f}s (5th-95th percentile)"
    )
    # The run is held to its own failures (a run without jitter, to compare with, only
    # differs by the machine's load): each retry waits up to 15% of the tier (1.5 s)
    # beyond it, and the wave of retries is that much longer than the wave of failures.
    assert spread >= 0.6 * jitter * TIER, spread
    assert retry_span >= fail_span + 0.5 * jitter * TIER, (fail_span, retry_span)


# -- 2. a rate limit per adapter ----------------------------------------------------------

N = 20


@pytest.mark.parametrize("limited", [True, False], ids=["limit-set", "no-limit"])
def test_a_rate_limited_tracker_gets_every_trade_with_or_without_our_limit(
    kafka_bootstrap, webhook, limited
):
    """The tracker answers 429 (Retry-After: 1) beyond N requests a second. With
    TRACE_RATE_LIMITS at N, every trade goes through and the 429s are near zero; without
    it, the 429s are honoured (nothing new is sent until the Retry-After has passed) and
    nothing is lost."""
    webhook.limit_rate(N, retry_after="1")
    settings = make_settings(
        kafka_bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule="1s",
        trace_retry_max_attempts=30,
        trace_max_in_flight=8,
        # A burst of 1 paces the posts evenly at N a second; a burst as big as the
        # tracker's own leaves its bucket no room for a post that arrives a hair early
        # (measured here: 4 429s for 100 trades with burst N, 19 with no limit).
        trace_rate_limits={"webhook": {"per_second": N, "burst": 1}} if limited else {},
    )
    trades = [trade_event(f"T-{i:03d}") for i in range(100)]
    publish(settings, *trades)
    with running(settings):
        wait_for(
            lambda: len(webhook.requests(ok=True)) >= len(trades),
            timeout=60,
            what="every trade accepted",
        )
    accepted = sorted(r.json()["trade_id"] for r in webhook.requests(ok=True))
    assert accepted == sorted(t["trade_id"] for t in trades), "lost or posted twice"
    assert not dead_letters(settings)
    throttled = [r for r in webhook.requests() if r.status == 429]
    print(f"\nrate limit {'set to N' if limited else 'off'}: {len(throttled)} 429s for 100 trades")
    if limited:
        assert len(throttled) <= 1, f"{len(throttled)} 429s with the limit set"
        return
    assert throttled, "the tracker's limit was never reached: the test proves nothing"
    # Posts already in flight arrive at once; nothing is sent after them until it passed.
    for t in throttled:
        sent = [r for r in webhook.requests() if t.at + 0.3 < r.at < t.at + 1.0]
        assert not sent, f"{len(sent)} posts within the Retry-After of a 429"


# -- 3. "slow down" pauses the whole adapter ------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_holds_every_delivery_of_the_adapter(
    kafka_bootstrap, webhook, alerts, status
):
    webhook.respond(Reply(status, headers={"Retry-After": "2"}))
    settings = make_settings(
        kafka_bootstrap,
        trace_delay_minutes=0,
        trace_retry_schedule="3s",
        trace_max_in_flight=1,
        alert_webhook_url=f"{alerts.url}/hook",
        alert_min_interval_seconds=0,
    )
    publish(settings, *(trade_event(f"T-{i}") for i in range(6)))
    with running(settings) as service:
        paused = service.metrics.tracker_paused.labels("webhook")
        wait_for(lambda: paused._value.get() == 1, what="the pause")
        wait_for(lambda: len(webhook.requests(ok=True)) == 6, timeout=30, what="every trade")
    first, *rest = webhook.requests()
    assert first.status == status
    assert all(r.at >= first.at + 2 for r in rest), [round(r.at - first.at, 2) for r in rest]
    retried = [r for r in rest if r.json()["trade_id"] == first.json()["trade_id"]]
    assert len(retried) == 1 and retried[0].at >= first.at + 3, "not on its retry tier"
    texts = [r.json()["text"] for r in alerts.requests()]
    assert any("webhook" in t and "slow down" in t for t in texts), texts


# -- 4. "gone" stops the adapter, not the trades ---------------------------------------------


def test_gone_stops_the_adapter_keeps_its_trades_and_a_restart_posts_them(
    kafka_bootstrap, webhook, alerts, monkeypatch
):
    with Tracker(default=Reply(200, b'{"error": false, "message": "ok"}')) as myfxbook:
        monkeypatch.setenv("MYFXBOOK_WEBHOOK_URL", f"{myfxbook.url}/mfx")
        monkeypatch.setenv("MYFXBOOK_WEBHOOK_TOKEN", "mfx-token")
        webhook.default = Reply(410)
        settings = make_settings(
            kafka_bootstrap,
            trace_delay_minutes=0,
            trace_enabled_adapters="webhook,myfxbook",
            trace_max_in_flight=1,
            alert_webhook_url=f"{alerts.url}/hook",
        )
        trades = [trade_event(f"T-{i}", tracing_adapters=["webhook", "myfxbook"]) for i in range(6)]
        wanted = sorted(t["trade_id"] for t in trades)
        publish(settings, *trades)
        with running(settings) as service:
            wait_for(lambda: len(myfxbook.requests()) == 6, timeout=30, what="the other adapter")
            ready = wait_for(
                lambda: "adapter stopped" in service.health.ready()[1] and service.health.ready(),
                what="readiness to report the stop",
            )
            assert ready == (False, "adapter stopped: webhook (the tracker answered HTTP 410 Gone)")
            assert service.metrics.adapter_stopped.labels("webhook")._value.get() == 1
            wait_for(lambda: alerts.requests(), what="the alert")
            time.sleep(1)  # a stopped adapter must stay stopped: nothing more may arrive
            assert len(webhook.requests()) == 1
        assert "stopped deliveries to webhook" in alerts.requests()[0].json()["text"]
        assert not dead_letters(settings)
        kept = webhook.requests()[0].json()["trade_id"]
        assert_not_committed_past(settings, kept)
        assert sorted(r.json()["ticket"] for r in myfxbook.requests()) == wanted

        webhook.default = Reply(200)  # the configuration is fixed; the service restarts
        with running(settings) as service:
            wait_for(
                lambda: {r.json()["trade_id"] for r in webhook.requests(ok=True)} == set(wanted),
                timeout=30,
                what="the kept trades posted after the restart",
            )
            wait_for(lambda: service.health.ready()[0], what="readiness after the restart")
        assert len(myfxbook.requests()) == 6, "the other adapter posted again"
        assert not dead_letters(settings)


def assert_not_committed_past(settings: Settings, trade_id: str) -> None:
    """The webhook group's committed offset on the delay topic is not past the record
    of `trade_id`."""
    delay = layout(settings).delay
    (record,) = [
        m
        for m in read_topics(settings, delay)
        if codec.decode_delivery(m.value() or b"").trace.trade_id == trade_id
    ]
    reader = Reader(settings.kafka_config())
    try:
        tp = (delay, record.partition() or 0)
        committed = reader.committed(f"{settings.trace_group_id}.deliver.webhook", [tp])[tp]
    finally:
        reader.close()
    assert committed <= (record.offset() or 0), (committed, record.offset())
