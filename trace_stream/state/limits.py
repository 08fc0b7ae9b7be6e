"""How fast an adapter may post: a rate limit with a burst, and a quota per UTC day.

A token bucket holds up to `burst` posts and refills at `per_second`; the daily quota
counts the posts started since the last UTC midnight. The deliverer asks
`allowance(now)` how many posts may start now, starts at most that many, and
`spend`s what it started; deliveries beyond it stay in the look-ahead buffer and in
Kafka, exactly as deliveries that are not due yet. `next_at(now)` says when one more
may go, so the loop sleeps until then and no later; `blocked_by(now)` names the limit
that holds deliveries back, for the metric. Off (None) limits never hold anything.

Pure: the caller passes the time (the deliverer's wall clock, so the UTC day is the
day of its clock); a manual clock tests it.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Literal

Limit = Literal["rate", "daily_quota"]
_EPSILON = 1e-9
"""Tokens earned in many small steps add up to a hair under a whole one in floats."""


class RateLimit:
    def __init__(
        self,
        now: datetime,
        *,
        per_second: float | None = None,
        burst: int | None = None,
        per_day: int | None = None,
    ) -> None:
        """`per_second` posts a second with bursts of `burst` (default: one second's
        worth, at least 1); `per_day` posts per UTC day. None: no such limit."""
        self._rate = per_second
        self._burst = float(burst or max(1, math.ceil(per_second or 1)))
        self._per_day = per_day
        self._tokens = self._burst
        self._at = now
        self._day = now.date()
        self._spent_today = 0

    @property
    def on(self) -> bool:
        return self._rate is not None or self._per_day is not None

    def allowance(self, now: datetime) -> int:
        """How many posts may start now."""
        self._refill(now)
        allowed = math.inf
        if self._rate is not None:
            allowed = math.floor(self._tokens + _EPSILON)
        if self._per_day is not None:
            allowed = min(allowed, self._per_day - self._spent_today)
        return max(0, int(allowed)) if allowed != math.inf else 1 << 30

    def spend(self, now: datetime, posts: int) -> None:
        """`posts` started now (at most the `allowance`)."""
        self._refill(now)
        self._tokens -= posts
        self._spent_today += posts

    def blocked_by(self, now: datetime) -> Limit | None:
        """The limit that lets no post start now, if any (the daily quota first: it
        lasts longer)."""
        self._refill(now)
        if self._per_day is not None and self._spent_today >= self._per_day:
            return "daily_quota"
        if self._rate is not None and self._tokens + _EPSILON < 1:
            return "rate"
        return None

    def next_at(self, now: datetime) -> datetime | None:
        """None when a post may start now; else when the next one may."""
        blocked = self.blocked_by(now)
        if blocked == "daily_quota":
            return datetime.combine(self._day + timedelta(days=1), time(), tzinfo=now.tzinfo)
        if blocked == "rate":
            assert self._rate is not None
            # A millisecond late rather than a rounding early: the loop wakes once.
            return now + timedelta(seconds=(1 - self._tokens) / self._rate + 0.001)
        return None

    def _refill(self, now: datetime) -> None:
        if now.date() != self._day:  # a new UTC day (the clock is UTC): a new quota
            self._day = now.date()
            self._spent_today = 0
        if self._rate is not None and now > self._at:
            earned = (now - self._at).total_seconds() * self._rate
            self._tokens = min(self._burst, self._tokens + earned)
        self._at = max(self._at, now)
