"""The routing table: (attempt, outcome) -> done | retry tier | dead letter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import trade_event
from trace_stream.adapters.base import Delivered, Gone, Permanent, Retriable
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.pipeline.redact import redact
from trace_stream.pipeline.routing import Abandon, Done, Retry, RetryPolicy, Stop, route

S = timedelta(seconds=1)
TIERS = (5 * S, 30 * S, 300 * S, 1800 * S, 3600 * S)
TOPICS = ("r.5s", "r.30s", "r.5m", "r.30m", "r.1h")
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def delivery(attempt: int) -> TraceDelivery:
    return TraceDelivery(
        trace=redact(trade_event("T-1")),
        adapters=("webhook", "file"),
        attempt=attempt,
        due_at=NOW,
        origin=Origin(topic="trade.closed", partition=0, offset=7),
    )


def go(attempt: int, outcome, max_retries: int = 5):
    policy = RetryPolicy(TIERS, TOPICS, max_retries)
    return route(delivery(attempt), "webhook", outcome, policy=policy, now=NOW)


FAIL = Retriable("server_error", "HTTP 503")


@pytest.mark.parametrize(
    ("attempts_before", "outcome", "expected"),
    [
        (0, Delivered(), Done()),
        (3, Delivered(), Done()),
        (0, FAIL, ("r.5s", 5)),
        (1, FAIL, ("r.30s", 30)),
        (2, FAIL, ("r.5m", 300)),
        (3, FAIL, ("r.30m", 1800)),
        (4, FAIL, ("r.1h", 3600)),
        (5, FAIL, "retries_exhausted"),
        (0, Permanent("auth", "HTTP 401"), "permanent_failure"),
        (2, Permanent("rejected", "HTTP 400"), "permanent_failure"),
        (0, Retriable("rate_limited", "HTTP 429", 20 * S), ("r.30s", 30)),
        (0, Retriable("rate_limited", "HTTP 429", 30 * S), ("r.30s", 30)),
        (0, Retriable("rate_limited", "HTTP 429", 2 * 3600 * S), ("r.1h", 3600)),
        (3, Retriable("rate_limited", "HTTP 429", 1 * S), ("r.30m", 1800)),
    ],
)
def test_route_table(attempts_before, outcome, expected) -> None:
    r = go(attempts_before, outcome)
    if isinstance(expected, Done):
        assert r == expected
    elif isinstance(expected, tuple):
        topic, seconds = expected
        assert isinstance(r, Retry)
        assert r.topic == topic
        assert r.delivery.due_at == NOW + timedelta(seconds=seconds)
        assert r.delivery.attempt == attempts_before + 1
    else:
        assert isinstance(r, Abandon)
        assert r.letter.reason == expected
        assert r.letter.delivery is not None
        assert r.letter.delivery.attempt == attempts_before + 1


def test_retries_past_the_last_tier_reuse_it() -> None:
    r = go(7, FAIL, max_retries=9)
    assert isinstance(r, Retry)
    assert r.topic == "r.1h"


def test_retry_keeps_history_and_narrows_to_the_failing_adapter() -> None:
    first = go(0, FAIL)
    assert isinstance(first, Retry)
    d = first.delivery
    assert d.adapters == ("webhook",)
    assert d.first_attempt_at == NOW
    assert [(e.adapter, e.reason, e.detail) for e in d.errors] == [
        ("webhook", "server_error", "HTTP 503")
    ]
    assert d.origin == Origin(topic="trade.closed", partition=0, offset=7)
    policy = RetryPolicy(TIERS, TOPICS, 5)
    later = NOW + timedelta(minutes=1)
    second = route(d, "webhook", FAIL, policy=policy, now=later)
    assert isinstance(second, Retry)
    assert second.delivery.first_attempt_at == NOW
    assert len(second.delivery.errors) == 2


def test_zero_retries_dead_letters_the_first_failure() -> None:
    r = go(0, FAIL, max_retries=0)
    assert isinstance(r, Abandon)
    assert r.letter.reason == "retries_exhausted"


def test_jitter_spreads_a_retry_over_a_share_of_its_tier_never_before_it() -> None:
    policy = RetryPolicy(TIERS, TOPICS, 5, jitter=0.2)
    for draw, wanted in [(0.0, 30), (0.5, 33), (0.999, 35.994)]:
        r = route(delivery(1), "webhook", FAIL, policy=policy, now=NOW, rand=lambda: draw)  # noqa: B023
        assert isinstance(r, Retry)
        assert r.delivery.due_at - NOW == timedelta(seconds=wanted)
    odd = route(delivery(1), "webhook", FAIL, policy=policy, now=NOW, rand=lambda: -1.0)
    assert isinstance(odd, Retry) and odd.delivery.due_at - NOW == 30 * S, "never early"
    most = route(delivery(4), "webhook", FAIL, policy=policy, now=NOW, rand=lambda: 0.999999)
    assert isinstance(most, Retry) and most.delivery.due_at - NOW <= policy.longest_wait
    assert policy.longest_wait == 3600 * 1.2 * S, "the deliverer accepts no due time later"


def test_gone_stops_the_adapter_and_keeps_the_delivery() -> None:
    assert go(2, Gone("HTTP 410")) == Stop("HTTP 410")
