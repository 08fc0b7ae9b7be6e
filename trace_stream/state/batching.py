"""Per-partition batches for batch adapters (file export). Pure bookkeeping.

A batch holds consecutive due deliveries of one partition: up to `size`, or fewer
once the oldest has waited `max_age` seconds, and all with the same `key` (the file
adapter's close date), so that one batch is one file and its write all or nothing.
A partition's next batch is handed out only after the previous one is committed
(`release`), so at most one written but uncommitted batch exists per partition, and
after a crash the batch is formed again from the same first offset: a sink that
names its output after (topic, partition, first offset) overwrites instead of
duplicating.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime

from trace_stream.core.messages import TP
from trace_stream.core.records import TraceDelivery

Item = tuple[int, TraceDelivery]


class _Open:
    """One partition's deliveries waiting for a batch, with each one's key and how
    many leading ones share the first's key (kept as they are added, so that forming
    a batch never walks the list again)."""

    __slots__ = ("items", "keys", "run", "since")

    def __init__(self, since: float) -> None:
        self.items: list[Item] = []
        self.keys: list[Hashable] = []
        self.run = 0
        self.since = since

    def add(self, item: Item, key: Hashable) -> None:
        if self.run == len(self.items) and (not self.keys or key == self.keys[0]):
            self.run += 1
        self.items.append(item)
        self.keys.append(key)

    def cut(self, n: int, now: float) -> list[Item]:
        """The first `n` items; the rest wait for the next batch, their age from `now`."""
        batch, self.items, self.keys = self.items[:n], self.items[n:], self.keys[n:]
        self.since = now
        first = self.keys[0] if self.keys else None
        self.run = next((i for i, k in enumerate(self.keys) if k != first), len(self.keys))
        return batch


class Batcher:
    def __init__(
        self, size: int, max_age: float, key: Callable[[TraceDelivery], Hashable] | None = None
    ) -> None:
        self.size = size
        self.max_age = max_age
        self._key = key
        self._open: dict[TP, _Open] = {}
        self._busy: set[TP] = set()
        self._settled: set[TP] = set()

    def add(self, tp: TP, offset: int, delivery: TraceDelivery, now: float) -> None:
        part = self._open.get(tp)
        if part is None:
            part = self._open[tp] = _Open(now)
        part.add((offset, delivery), None if self._key is None else self._key(delivery))

    def ready(self, now: float) -> list[tuple[TP, list[Item]]]:
        """Batches to deliver now; their partitions are busy until released."""
        out = []
        for tp, part in list(self._open.items()):
            if tp in self._busy:
                continue
            n = min(part.run, self.size)  # how many leading items may share a batch
            if n == len(part.items) < self.size and now - part.since < self.max_age:
                continue
            out.append((tp, part.cut(n, now)))
            self._busy.add(tp)
            if not part.items:
                del self._open[tp]
        return out

    def waiting(self, tp: TP | None = None) -> int:
        """Deliveries added and not yet handed out in a batch (of `tp`, or all)."""
        if tp is not None:
            part = self._open.get(tp)
            return 0 if part is None else len(part.items)
        return sum(len(part.items) for part in self._open.values())

    def settled(self, tp: TP) -> None:
        """The partition's batch has an outcome; it is released with the next commit."""
        self._settled.add(tp)

    def has_settled(self) -> bool:
        """Is a batch settled and waiting for its commit?"""
        return bool(self._settled)

    def take_settled(self, tps: Iterable[TP] | None = None) -> set[TP]:
        """Settled partitions (among `tps`), to release once their commit went through."""
        taken = set(self._settled) if tps is None else self._settled & set(tps)
        self._settled -= taken
        return taken

    def release(self, tps: Iterable[TP]) -> None:
        """The batches of `tps` are committed: their partitions may start the next one."""
        self._busy.difference_update(tps)

    def oldest_due(self) -> datetime | None:
        """The earliest due time among the deliveries waiting for their batch."""
        return min((d.due_at for part in self._open.values() for _, d in part.items), default=None)

    def wait_seconds(self, now: float, cap: float) -> float:
        waiting = [part.since for tp, part in self._open.items() if tp not in self._busy]
        if not waiting:
            return cap
        return max(0.0, min(cap, min(waiting) + self.max_age - now))

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._open if tps is None else tps):
            self._open.pop(tp, None)
        gone = set(self._busy if tps is None else tps)
        self._busy -= gone
        self._settled -= gone
