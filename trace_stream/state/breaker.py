"""A circuit breaker per adapter, for trackers that reject every request.

When a tracker revokes the token, or a change on either side makes every body
invalid, every delivery fails permanently and would be dead-lettered one after
another. After `threshold` permanent failures in a row the breaker opens: the
deliverer holds its partitions, exactly as for a delivery that is not due yet,
until `cooldown` has passed. Then deliveries flow again; one more permanent failure
reopens it, a success closes it. Retriable failures (an outage) do not count: the
retry ladder already spaces those out. Deliveries waiting meanwhile stay in Kafka:
nothing is dead-lettered while the breaker is open.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Breaker:
    def __init__(self, threshold: int, cooldown: timedelta) -> None:
        """`threshold` 0 disables the breaker."""
        self._threshold = threshold
        self._cooldown = cooldown
        self._failures = 0
        self._open_until: datetime | None = None

    def closed_at(self, now: datetime) -> datetime | None:
        """None when deliveries may go out now; else when they may again."""
        if self._open_until is not None and now < self._open_until:
            return self._open_until
        return None

    def success(self) -> None:
        self._failures = 0
        self._open_until = None

    def permanent_failure(self, now: datetime) -> bool:
        """Count one; True when this failure opened (or reopened) the breaker."""
        if not self._threshold:
            return False
        self._failures += 1
        half_open = self._open_until is not None  # cooled down, and failing again
        if self._failures >= self._threshold or half_open:
            self._open_until = now + self._cooldown
            self._failures = 0
            return True
        return False
