"""What the tracker itself said about sending: "slow down" (a Retry-After) or "gone".

A tracker answering 429 or 503 with a Retry-After asks the client, not one request,
to wait: `pause(until)` holds every delivery of the adapter until then, as an open
circuit breaker does (they stay in the look-ahead buffer and in Kafka; nothing is
dead-lettered; the loop wakes when the pause ends). A later Retry-After may lengthen
the pause, never shorten it. A pause longer than `longest` is cut to it: a tracker's
"come back in a year" must not hold trades for a year (the delivery that got it waits
on its retry tier, capped the same way).

A tracker answering 410 Gone says the endpoint is gone for good: `stop(why)` stops the
adapter until the service restarts (after its configuration is fixed). Its deliveries
stay uncommitted in Kafka; they are never dead-lettered for it.

Pure: the caller passes the time; a manual clock tests it.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Hold:
    def __init__(self, longest: timedelta) -> None:
        self._longest = longest
        self._until: datetime | None = None
        self.stopped: str | None = None
        """Why the adapter stopped (for readiness and the alert); None while it runs."""

    def pause(self, now: datetime, wait: timedelta) -> bool:
        """Hold deliveries for `wait` from `now` (at most `longest`); True when this
        began a pause (none was under way), False when it only lengthened one."""
        began = self.until(now) is None
        end = now + min(wait, self._longest)
        if self._until is None or end > self._until:
            self._until = end
        return began

    def until(self, now: datetime) -> datetime | None:
        """None when the tracker lets deliveries go now; else until when it does not."""
        if self._until is not None and now < self._until:
            return self._until
        return None

    def stop(self, why: str) -> bool:
        """The endpoint is gone; True the first time."""
        first = self.stopped is None
        self.stopped = self.stopped or why
        return first
