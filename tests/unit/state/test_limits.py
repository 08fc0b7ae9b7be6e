"""The rate limit and the daily quota, on a manual clock: how many posts may start,
and when the next one may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trace_stream.state.limits import RateLimit

T0 = datetime(2026, 1, 1, 23, 59, 58, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def spend_all(limit: RateLimit, now: datetime) -> int:
    n = limit.allowance(now)
    limit.spend(now, n)
    return n


def test_off_holds_nothing() -> None:
    limit = RateLimit(T0)
    assert not limit.on
    assert limit.allowance(T0) >= 1_000_000
    limit.spend(T0, 1_000_000)
    assert (limit.blocked_by(T0), limit.next_at(T0)) == (None, None)


def test_a_burst_then_the_rate() -> None:
    limit = RateLimit(T0, per_second=10, burst=20)
    assert spend_all(limit, T0) == 20
    assert limit.blocked_by(T0) == "rate"
    wake = limit.next_at(T0)
    assert wake is not None and T0 + 100 * MS <= wake <= T0 + 102 * MS
    assert limit.allowance(T0 + 99 * MS) == 0, "a post before its token"
    assert limit.allowance(T0 + 100 * MS) == 1
    # Over a long run no more than the rate (plus the one burst) goes out.
    now, started = T0, 0
    for _ in range(1000):
        now += 10 * MS
        started += spend_all(limit, now)
    assert started == 100  # 10 s at 10/s
    assert limit.allowance(now + timedelta(hours=1)) == 20, "the bucket holds one burst"


def test_the_burst_defaults_to_one_seconds_worth() -> None:
    assert RateLimit(T0, per_second=2.5).allowance(T0) == 3
    assert RateLimit(T0, per_second=0.2).allowance(T0) == 1


def test_the_daily_quota_renews_at_utc_midnight() -> None:
    limit = RateLimit(T0, per_day=5)
    assert spend_all(limit, T0) == 5
    assert limit.blocked_by(T0) == "daily_quota"
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    assert limit.next_at(T0) == midnight
    assert limit.allowance(midnight - MS) == 0
    assert limit.allowance(midnight) == 5


def test_the_quota_wins_over_the_rate() -> None:
    limit = RateLimit(T0, per_second=100, burst=100, per_day=3)
    assert spend_all(limit, T0) == 3
    assert limit.blocked_by(T0 + timedelta(seconds=1)) == "daily_quota"
