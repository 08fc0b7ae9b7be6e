"""What holds an adapter back as a whole, asked in one place: on a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trace_stream.state.breaker import Breaker
from trace_stream.state.gate import Gate
from trace_stream.state.hold import Hold
from trace_stream.state.limits import RateLimit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def gate(**limit: float) -> tuple[Gate, Breaker, Hold]:
    breaker, hold = Breaker(1, 60 * S), Hold(longest=600 * S)
    return Gate(breaker, hold, RateLimit(T0, **limit)), breaker, hold  # type: ignore[arg-type]


def test_open_by_default_and_wakes_at_the_due_time() -> None:
    g, _, _ = gate()
    assert not g.closed(T0)
    assert g.wake_at(T0 + 5 * S, T0) == T0 + 5 * S
    assert (g.waiting_for(T0), g.paused(T0)) == (None, False)


def test_the_latest_hold_wins_and_none_makes_a_delivery_early() -> None:
    g, breaker, hold = gate(per_second=1)
    g.spend(T0, g.allowance(T0))
    assert g.waiting_for(T0) == "rate"
    assert g.wake_at(T0, T0) == T0 + 1.001 * S, "the next token"
    hold.pause(T0, 30 * S)
    assert g.closed(T0) and g.paused(T0)
    assert g.wake_at(T0, T0) == T0 + 30 * S, "the tracker's Retry-After"
    breaker.permanent_failure(T0)
    assert g.wake_at(T0, T0) == T0 + 60 * S, "the breaker's cool-down"
    assert g.wake_at(T0 + 90 * S, T0) == T0 + 90 * S, "not due yet: its own due time"


def test_gone_closes_for_good_with_nothing_to_wake_for() -> None:
    g, _, hold = gate()
    hold.stop("HTTP 410")
    assert g.closed(T0 + 3650 * 86400 * S)
    assert g.wake_at(T0, T0) is None
