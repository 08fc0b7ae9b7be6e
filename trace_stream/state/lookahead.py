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

What is held is anything with a `due_at`; the deliverer holds `Held`, each record's
bytes and due time, and decodes the delivery when it is released. Neither bounds
itself: the deliverer counts what it holds and stops reading (pauses a partition)
when its budget is spent (`intake`). No thread sleeps on a delay: the consumer's
poll timeout is cut to `next_due` instead.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from trace_stream.core.messages import TP


class Due(Protocol):
    @property
    def due_at(self) -> datetime: ...


D = TypeVar("D", bound=Due)

Entry = tuple[TP, int, D]
"""(partition, offset, what is held)"""


@dataclass(frozen=True, slots=True)
class Held:
    """A record's bytes and due time: a few hundred bytes, where the decoded delivery
    takes about 3.7 KiB. The deliverer decodes it when read, to check it, and again
    when it falls due."""

    due_at: datetime
    raw: bytes


class Lookahead(Protocol[D]):
    def add(self, tp: TP, offset: int, item: D) -> None: ...

    def pop_due(self, now: datetime, limit: int) -> list[Entry[D]]:
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


class Timers(Generic[D]):
    """A timer per record: a heap ordered by due time (then by arrival)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, TP, int, D]] = []
        self._seq = itertools.count()

    def add(self, tp: TP, offset: int, item: D) -> None:
        heapq.heappush(self._heap, (item.due_at, next(self._seq), tp, offset, item))

    def pop_due(self, now: datetime, limit: int) -> list[Entry[D]]:
        out: list[Entry[D]] = []
        while self._heap and len(out) < limit and self._heap[0][0] <= now:
            _, _, tp, offset, item = heapq.heappop(self._heap)
            out.append((tp, offset, item))
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


class InOrder(Generic[D]):
    """Head-of-line per partition: a record is released once it and every record read
    before it in its partition are due."""

    def __init__(self) -> None:
        self._parts: dict[TP, deque[Entry[D]]] = {}
        self._count = 0

    def add(self, tp: TP, offset: int, item: D) -> None:
        self._parts.setdefault(tp, deque()).append((tp, offset, item))
        self._count += 1

    def pop_due(self, now: datetime, limit: int) -> list[Entry[D]]:
        out: list[Entry[D]] = []
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
