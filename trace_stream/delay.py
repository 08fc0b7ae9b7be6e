"""The delay gate: which partitions are held because their head record is not due.

Pure bookkeeping; the deliverer pauses a held partition, seeks it back to the head
and resumes it when `release_due` returns it. No thread sleeps on a delay: the
consumer's poll timeout is cut to the next due time instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .kafka import TP


class DelayGate:
    def __init__(self) -> None:
        self._held: dict[TP, datetime] = {}

    def hold(self, tp: TP, due: datetime) -> None:
        self._held[tp] = due

    def is_held(self, tp: TP) -> bool:
        return tp in self._held

    def release_due(self, now: datetime) -> list[TP]:
        """Partitions whose head is due now; they are no longer held."""
        due = [tp for tp, at in self._held.items() if at <= now]
        for tp in due:
            del self._held[tp]
        return due

    def wait_seconds(self, now: datetime, cap: float) -> float:
        """How long the consumer may block before a held partition becomes due."""
        if not self._held:
            return cap
        soonest = min(self._held.values())
        return max(0.0, min(cap, (soonest - now).total_seconds()))

    def held(self) -> dict[TP, datetime]:
        return dict(self._held)

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self._held.pop(tp, None)
