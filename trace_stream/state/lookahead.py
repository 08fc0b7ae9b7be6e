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
integer microseconds (a datetime costs 48 bytes more, and the conversion is exact)
and its offset, in arrays and heaps of plain integers rather than a tuple each, and
one shared (topic, partition) tuple per partition. Each kind says what an entry
costs (`ENTRY_BYTES`: 148 for a timer, 72 in order) beside the record's length.
"""

from __future__ import annotations

import heapq
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from trace_stream.core.clock import from_micros, to_micros
from trace_stream.core.messages import TP
from trace_stream.state.int_queue import IntQueue

Entry = tuple[TP, int, bytes]
"""(partition, offset, the record's bytes)"""


class Lookahead(Protocol):
    ENTRY_BYTES: int
    """Memory one held record costs beyond its length, measured with tracemalloc
    (tests/unit/state/test_lookahead_memory.py), with its unfinished offset in the
    deliverer's tracker (8 bytes), rounded up."""

    size: int
    """Bytes held, the sum of `cost` over the entries."""

    def cost(self, raw: bytes) -> int:
        """The bytes one held record is accounted for."""
        ...

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


_SLOT_BITS = 32
_SLOT = (1 << _SLOT_BITS) - 1
_SPARSE = 4096
"""Slots are renumbered when fewer than half of at least this many are in use: slots
are never reused, so that they follow the order records were read in."""


class _Charged:
    """What both kinds charge a record held: its length and their ENTRY_BYTES. (A
    plain base, not the Protocol: isinstance on a Protocol subclass costs 0.7 us.)"""

    ENTRY_BYTES = 0

    def cost(self, raw: bytes) -> int:
        return len(raw) + self.ENTRY_BYTES


class Timers(_Charged):
    """A timer per record: a heap of integers, each a record's due time in
    microseconds shifted left by 32 bits plus its slot, the index at which its
    bytes, offset and partition are kept. An int key in a list costs 44 bytes where a
    tuple with its own ints costs 150. Slots are given in the order records are read
    and never reused, so records due at the same time leave in that order: a
    partition's in offset order, which keeps what is finished a prefix that can be
    committed when a rebalance takes the partition away. (2**32 slots would take over
    400 GiB: the budget ends it long before.)"""

    ENTRY_BYTES = 148
    """The bytes object's header (33), the heap key and its place (44), the slot
    (24: bytes, offset, partition), the unfinished offset (8): measured 110 to 112.
    With what waits to be reclaimed, at most one slot left behind per record held
    (24) and one committed offset at the tracker's front (8): measured 144."""

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._raw: list[bytes | None] = []
        self._offset = array("q")
        self._tp: list[TP | None] = []
        self._tps: dict[TP, TP] = {}
        self.size = 0

    def add(self, tp: TP, offset: int, due_at: datetime, raw: bytes) -> None:
        slot = len(self._raw)
        self._raw.append(raw)
        self._offset.append(offset)
        self._tp.append(self._tps.setdefault(tp, tp))
        heapq.heappush(self._heap, to_micros(due_at) << _SLOT_BITS | slot)
        self.size += len(raw) + self.ENTRY_BYTES

    def pop_due(self, now: datetime, limit: int) -> list[Entry]:
        out: list[Entry] = []
        heap, raws, tps = self._heap, self._raw, self._tp
        edge = (to_micros(now) + 1) << _SLOT_BITS  # a key below it is due at `now`
        while heap and len(out) < limit and heap[0] < edge:
            slot = heapq.heappop(heap) & _SLOT
            raw, tp = raws[slot], tps[slot]
            assert raw is not None
            assert tp is not None
            raws[slot] = tps[slot] = None
            self.size -= len(raw) + self.ENTRY_BYTES
            out.append((tp, self._offset[slot], raw))
        if len(raws) >= _SPARSE and 2 * len(heap) < len(raws):
            self._renumber(lambda tp: True)
        return out

    def next_due(self) -> datetime | None:
        return from_micros(self._heap[0] >> _SLOT_BITS) if self._heap else None

    def oldest_due(self) -> datetime | None:
        return self.next_due()

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        gone = set(self._tps if tps is None else tps)
        self._renumber(lambda tp: tp not in gone)
        for tp in gone:
            self._tps.pop(tp, None)

    def _renumber(self, keep: Callable[[TP], bool]) -> None:
        """Keep the entries of the partitions `keep` says, in slots 0..n-1 in the order
        they are due, then read (a sorted list is a heap)."""
        held = []
        for key in sorted(self._heap):
            slot = key & _SLOT
            tp = self._tp[slot]
            assert tp is not None
            if keep(tp):
                held.append((key >> _SLOT_BITS, tp, self._offset[slot], self._raw[slot]))
        self._raw = [raw for _, _, _, raw in held]
        self._offset = array("q", (offset for _, _, offset, _ in held))
        self._tp = [tp for _, tp, _, _ in held]
        self._heap = [due << _SLOT_BITS | slot for slot, (due, _, _, _) in enumerate(held)]
        self.size = sum(self.cost(raw or b"") for raw in self._raw)

    def __len__(self) -> int:
        return len(self._heap)


class _Queue:
    """One partition's records in offset order: offsets and due times at 8 bytes each."""

    __slots__ = ("dues", "offsets", "raws")

    def __init__(self) -> None:
        self.offsets = IntQueue()
        self.dues = IntQueue()
        self.raws: deque[bytes] = deque()


class InOrder(_Charged):
    """Head-of-line per partition: a record is released once it and every record read
    before it in its partition are due. A partition that `limit` cut short goes to
    the back, so that one partition's backlog does not starve the others."""

    ENTRY_BYTES = 72
    """The bytes object's header (33), its offset and due time (16), its place in a
    deque (8), the unfinished offset (8), with the arrays' spare room; measured 67."""

    def __init__(self) -> None:
        self._parts: dict[TP, _Queue] = {}
        self._count = 0
        self.size = 0

    def add(self, tp: TP, offset: int, due_at: datetime, raw: bytes) -> None:
        queue = self._parts.get(tp)
        if queue is None:
            queue = self._parts[tp] = _Queue()
        queue.offsets.append(offset)
        queue.dues.append(to_micros(due_at))
        queue.raws.append(raw)
        self._count += 1
        self.size += len(raw) + self.ENTRY_BYTES

    def pop_due(
        self, now: datetime, limit: int, room: Callable[[TP], int] | None = None
    ) -> list[Entry]:
        """As `Lookahead.pop_due`; with `room`, at most `room(tp)` from each partition."""
        out: list[Entry] = []
        at = to_micros(now)
        for tp, queue in list(self._parts.items()):
            served = len(out)
            cap = limit if room is None else min(limit, served + room(tp))
            offsets, dues, raws = queue.offsets, queue.dues, queue.raws
            while raws and len(out) < cap and dues.first() <= at:
                dues.popleft()
                raw = raws.popleft()
                self.size -= len(raw) + self.ENTRY_BYTES
                out.append((tp, offsets.popleft(), raw))
            if not raws:
                del self._parts[tp]
            elif len(out) > served:
                self._parts[tp] = self._parts.pop(tp)  # to the back
        self._count -= len(out)
        return out

    def next_due(self) -> datetime | None:
        heads = (q.dues.first() for q in self._parts.values())
        return _at_or_none(min(heads, default=None))

    def oldest_due(self) -> datetime | None:
        # Records behind a held head may be due already: they count for the due lag.
        lowest = (q.dues.lowest() for q in self._parts.values())
        return _at_or_none(min(lowest, default=None))

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._parts if tps is None else tps):
            queue = self._parts.pop(tp, None)
            if queue is not None:
                self._count -= len(queue.raws)
                self.size -= sum(self.cost(raw) for raw in queue.raws)

    def __len__(self) -> int:
        return self._count


def _at_or_none(us: int | None) -> datetime | None:
    return None if us is None else from_micros(us)
