"""Deliveries read ahead of the committed position, each released when it falls due.

Pure bookkeeping for the deliverer. Every delivery it reads goes in here as the
record's bytes with its due time, and comes out of `pop_due` once that time has
come, whatever order the records arrived in:

- `Timers`: a timer per record. A record that is not due never holds back one read
  after it that is: each is posted at its own due time.
- `InOrder`: per partition, in offset order. A partition's head releases the records
  behind it only once it is due itself. For batch adapters, whose output is named
  after the first offset of a run of consecutive records (so that a batch formed
  again after a crash overwrites instead of duplicating).

Both count the memory they hold (`size`, bytes as `cost` accounts them) so that the
deliverer can bound it (`intake`): what it holds grows with rate x delay, and only a
byte budget says how much memory that is. Neither bounds itself. No thread sleeps on
a delay: the consumer's poll timeout is cut to `next_due` instead.

An entry is kept lean, as 150,000 of them wait at once at 500 trades/s and a
5-minute delay: the record's bytes (decoded only when released), its due time as
integer microseconds (a datetime costs 48 bytes more, and the conversion is exact),
its offset, and one shared (topic, partition) tuple per partition.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from trace_stream.core.messages import TP

ENTRY_BYTES = 320
"""Memory one held record costs beyond its length, measured with tracemalloc
(tests/unit/state/test_lookahead_memory.py): the bytes object's header (33), the
entry (tuple and two ints, about 150) and the record's unfinished slot in the
deliverer's offset tracker (about 140), rounded up."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Entry = tuple[TP, int, bytes]
"""(partition, offset, the record's bytes)"""


def cost(raw: bytes) -> int:
    """The bytes one held record is accounted for."""
    return len(raw) + ENTRY_BYTES


def micros(at: datetime) -> int:
    """`at` (timezone-aware) as integer microseconds since the epoch, exactly."""
    return (at - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class Lookahead(Protocol):
    size: int
    """Bytes held, the sum of `cost` over the entries."""

    def add(self, tp: TP, offset: int, due_at: datetime, raw: bytes) -> None: ...

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
    """A timer per record: a heap ordered by due time, then partition and offset."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, TP, int, bytes]] = []
        self._tps: dict[TP, TP] = {}
        self.size = 0

    def add(self, tp: TP, offset: int, due_at: datetime, raw: bytes) -> None:
        tp = self._tps.setdefault(tp, tp)
        heapq.heappush(self._heap, (micros(due_at), tp, offset, raw))
        self.size += cost(raw)

    def pop_due(self, now: datetime, limit: int) -> list[Entry]:
        out: list[Entry] = []
        at = micros(now)
        while self._heap and len(out) < limit and self._heap[0][0] <= at:
            _, tp, offset, raw = heapq.heappop(self._heap)
            self.size -= cost(raw)
            out.append((tp, offset, raw))
        return out

    def next_due(self) -> datetime | None:
        return from_micros(self._heap[0][0]) if self._heap else None

    def oldest_due(self) -> datetime | None:
        return self.next_due()

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        gone = set(self._tps if tps is None else tps)
        self._heap = [e for e in self._heap if e[1] not in gone]
        heapq.heapify(self._heap)
        self.size = sum(cost(e[3]) for e in self._heap)
        for tp in gone:
            self._tps.pop(tp, None)

    def __len__(self) -> int:
        return len(self._heap)


class InOrder:
    """Head-of-line per partition: a record is released once it and every record read
    before it in its partition are due. A partition that `limit` cut short goes to
    the back, so that one partition's backlog does not starve the others."""

    def __init__(self) -> None:
        self._parts: dict[TP, deque[tuple[int, int, bytes]]] = {}
        self._count = 0
        self.size = 0

    def add(self, tp: TP, offset: int, due_at: datetime, raw: bytes) -> None:
        queue = self._parts.get(tp)
        if queue is None:
            queue = self._parts[tp] = deque()
        queue.append((offset, micros(due_at), raw))
        self._count += 1
        self.size += cost(raw)

    def pop_due(
        self, now: datetime, limit: int, room: Callable[[TP], int] | None = None
    ) -> list[Entry]:
        """As `Lookahead.pop_due`; with `room`, at most `room(tp)` from each partition."""
        out: list[Entry] = []
        at = micros(now)
        for tp, queue in list(self._parts.items()):
            served = len(out)
            cap = limit if room is None else min(limit, served + room(tp))
            while queue and len(out) < cap and queue[0][1] <= at:
                offset, _, raw = queue.popleft()
                self.size -= cost(raw)
                out.append((tp, offset, raw))
            if not queue:
                del self._parts[tp]
            elif len(out) > served:
                self._parts[tp] = self._parts.pop(tp)  # to the back
        self._count -= len(out)
        return out

    def next_due(self) -> datetime | None:
        heads = (q[0][1] for q in self._parts.values())
        return _at_or_none(min(heads, default=None))

    def oldest_due(self) -> datetime | None:
        # Records behind a held head may be due already: they count for the due lag.
        return _at_or_none(min((e[1] for q in self._parts.values() for e in q), default=None))

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._parts if tps is None else tps):
            queue = self._parts.pop(tp, ())
            self._count -= len(queue)
            self.size -= sum(cost(e[2]) for e in queue)

    def __len__(self) -> int:
        return self._count


def _at_or_none(us: int | None) -> datetime | None:
    return None if us is None else from_micros(us)
