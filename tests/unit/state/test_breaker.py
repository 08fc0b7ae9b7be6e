from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trace_stream.state.breaker import Breaker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COOL = timedelta(seconds=60)


def test_opens_after_threshold_in_a_row_and_a_success_resets() -> None:
    b = Breaker(3, COOL)
    assert not b.permanent_failure(T0)
    assert not b.permanent_failure(T0)
    b.success()
    assert not b.permanent_failure(T0)
    assert not b.permanent_failure(T0)
    assert b.permanent_failure(T0)  # third in a row
    assert b.closed_at(T0) == T0 + COOL
    assert b.closed_at(T0 + COOL) is None  # cooled down: deliveries flow again


def test_one_failure_after_the_cooldown_reopens_and_a_success_closes() -> None:
    b = Breaker(3, COOL)
    for _ in range(3):
        b.permanent_failure(T0)
    later = T0 + COOL
    assert b.permanent_failure(later)  # half-open: one failure is enough
    assert b.closed_at(later) == later + COOL
    b.success()
    assert b.closed_at(later) is None
    assert not b.permanent_failure(later + COOL)  # counting starts afresh


def test_threshold_zero_never_opens() -> None:
    b = Breaker(0, COOL)
    assert not any(b.permanent_failure(T0) for _ in range(100))
    assert b.closed_at(T0) is None
