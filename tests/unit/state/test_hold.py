"""A tracker's "slow down" (a pause until a time) and "gone" (a stop), on a manual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trace_stream.state.hold import Hold

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def test_a_pause_holds_until_its_end_and_only_lengthens() -> None:
    hold = Hold(longest=3600 * S)
    assert hold.until(T0) is None
    assert hold.pause(T0, 10 * S), "began a pause"
    assert not hold.pause(T0 + S, 2 * S), "a shorter one is no new pause"
    assert hold.until(T0 + 9 * S) == T0 + 10 * S, "a later Retry-After never shortens it"
    assert not hold.pause(T0 + 5 * S, 20 * S)
    assert hold.until(T0 + 10 * S) == T0 + 25 * S
    assert hold.until(T0 + 25 * S) is None
    assert hold.pause(T0 + 30 * S, S), "a new pause once the last one ended"


def test_a_pause_is_at_most_the_longest() -> None:
    hold = Hold(longest=60 * S)
    hold.pause(T0, 365 * 24 * 3600 * S)
    assert hold.until(T0) == T0 + 60 * S


def test_gone_stops_for_good_and_says_why_once() -> None:
    hold = Hold(longest=60 * S)
    assert hold.stopped is None
    assert hold.stop("HTTP 410")
    assert not hold.stop("HTTP 410 again")
    assert hold.stopped == "HTTP 410"
