"""May an adapter's deliverer start posts now, and how many? The one question the loop
asks of everything that holds an adapter back as a whole:

    the tracker said gone (410, `hold`)       -> nothing, until a restart; no wake-up
    the circuit breaker is open (`breaker`)   -> nothing until it cools down
    the tracker said when (Retry-After, `hold`) -> nothing until then
    the rate limit or daily quota (`limits`)  -> as many as it allows

Held deliveries are never dropped nor dead-lettered: they wait in the look-ahead buffer
and in Kafka, exactly as deliveries that are not due yet, and `wake_at` tells the loop
when to look again so it neither spins nor posts early. Pure: the caller passes the
time.
"""

from __future__ import annotations

from datetime import datetime

from trace_stream.state.breaker import Breaker
from trace_stream.state.hold import Hold
from trace_stream.state.limits import Limit, RateLimit


class Gate:
    def __init__(self, breaker: Breaker, hold: Hold, limit: RateLimit) -> None:
        self._breaker = breaker
        self._hold = hold
        self._limit = limit

    def closed(self, now: datetime) -> bool:
        """Nothing may start now, whatever the limit: stopped, breaker open or paused."""
        return (
            self._hold.stopped is not None
            or self._breaker.closed_at(now) is not None
            or self._hold.until(now) is not None
        )

    def allowance(self, now: datetime) -> int:
        """How many posts the rate limit and quota let start now (when not `closed`)."""
        return self._limit.allowance(now)

    def spend(self, now: datetime, posts: int) -> None:
        self._limit.spend(now, posts)

    def wake_at(self, due: datetime, now: datetime) -> datetime | None:
        """When a delivery due at `due` may start: `due`, or later if something holds
        the adapter back then; None when nothing will until a restart."""
        if self._hold.stopped is not None:
            return None
        holds = (self._breaker.closed_at(now), self._hold.until(now), self._limit.next_at(now))
        return max([due, *(t for t in holds if t is not None)])

    def waiting_for(self, now: datetime) -> Limit | None:
        """The limit that lets no post start now, if any (for the metric)."""
        return self._limit.blocked_by(now) if self._limit.on else None

    def paused(self, now: datetime) -> bool:
        """The tracker's Retry-After holds the adapter now."""
        return self._hold.until(now) is not None
