"""Deliveries read ahead of the committed position, each released when it falls due.

Pure bookkeeping for the deliverer. Every delivery it reads goes in here with its
due time and comes out of `pop_due` once that time has come, whatever order the
records arrived in:

- `Timers`: a timer per record. A record that is not due never holds back one read
  after it that is: each is posted at its own due time.
- `InOrder`: per partition, in offset order. A partition's head releases the records
  behind it only once it is due itself. For batch adapters, whose output is named
  after the first offset of a run of consecutive records (so that a batch formed
  again after a crash overwrites instead of duplicating).

Neither bounds itself: the deliverer counts what it holds and stops reading (pauses
a partition) when its budget is spent. No thread sleeps on a delay: the consumer's
poll timeout is cut to `next_due` instead.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from .kafka import TP
from .records import TraceDelivery

Entry = tuple[TP, int, TraceDelivery]
"""(partition, offset, delivery)"""


class Lookahead(Protocol):
    def add(self, tp: TP, offset: int, delivery: TraceDelivery) -> None: ...

    def pop_due(self, now: datetime, limit: int) -> list[Entry]:
        """Up to `limit` entries due at `now`, earliest due first; they leave the buffer."""
        ...

    def next_due(self) -> datetime | None:
        """When `pop_due` will next return something (None: nothing held)."""
        ...

    def oldest_due(self) -> datetime | None:
        """The earliest due time of any entry held, released or not (for the due lag)."""
        ...

    def forget(self, tps: Iterable[TP] | None = None) -> None: ...

    def __len__(self) -> int: ...


class Timers:
    """A timer per record: a heap ordered by due time (then by arrival)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, TP, int, TraceDelivery]] = []
        self._seq = itertools.count()

    def add(self, tp: TP, offset: int, delivery: TraceDelivery) -> None:
        heapq.heappush(self._heap, (delivery.due_at, next(self._seq), tp, offset, delivery))

    def pop_due(self, now: datetime, limit: int) -> list[Entry]:
        out: list[Entry] = []
        while self._heap and len(out) < limit and self._heap[0][0] <= now:
            _, _, tp, offset, delivery = heapq.heappop(self._heap)
            out.append((tp, offset, delivery))
        return out

    def next_due(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def oldest_due(self) -> datetime | None:
        return self.next_due()

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        if tps is None:
            self._heap.clear()
            return
        gone = set(tps)
        self._heap = [e for e in self._heap if e[2] not in gone]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)


class InOrder:
    """Head-of-line per partition: a record is released once it and every record read
    before it in its partition are due."""

    def __init__(self) -> None:
        self._parts: dict[TP, deque[Entry]] = {}
        self._count = 0

    def add(self, tp: TP, offset: int, delivery: TraceDelivery) -> None:
        self._parts.setdefault(tp, deque()).append((tp, offset, delivery))
        self._count += 1

    def pop_due(self, now: datetime, limit: int) -> list[Entry]:
        out: list[Entry] = []
        for tp, queue in list(self._parts.items()):
            while queue and len(out) < limit and queue[0][2].due_at <= now:
                out.append(queue.popleft())
            if not queue:
                del self._parts[tp]
        self._count -= len(out)
        return out

    def next_due(self) -> datetime | None:
        return min((q[0][2].due_at for q in self._parts.values()), default=None)

    def oldest_due(self) -> datetime | None:
        # Records behind a held head may be due already: they count for the due lag.
        return min((e[2].due_at for q in self._parts.values() for e in q), default=None)

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._parts if tps is None else tps):
            self._count -= len(self._parts.pop(tp, ()))

    def __len__(self) -> int:
        return self._count
