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


class Batcher:
    def __init__(
        self, size: int, max_age: float, key: Callable[[TraceDelivery], Hashable] | None = None
    ) -> None:
        self.size = size
        self.max_age = max_age
        self._key = key
        self._open: dict[TP, list[Item]] = {}
        self._since: dict[TP, float] = {}
        self._busy: set[TP] = set()
        self._settled: set[TP] = set()

    def add(self, tp: TP, offset: int, delivery: TraceDelivery, now: float) -> None:
        self._open.setdefault(tp, []).append((offset, delivery))
        self._since.setdefault(tp, now)

    def ready(self, now: float) -> list[tuple[TP, list[Item]]]:
        """Batches to deliver now; their partitions are busy until released."""
        out = []
        for tp, items in list(self._open.items()):
            if tp in self._busy:
                continue
            n = self._run_length(items)
            if n == len(items) < self.size and now - self._since[tp] < self.max_age:
                continue
            batch, rest = items[:n], items[n:]
            out.append((tp, batch))
            self._busy.add(tp)
            if rest:
                self._open[tp] = rest
                self._since[tp] = now
            else:
                del self._open[tp], self._since[tp]
        return out

    def _run_length(self, items: list[Item]) -> int:
        """How many leading items may share a batch: same key, at most `size`."""
        if self._key is None:
            return min(len(items), self.size)
        first = self._key(items[0][1])
        n = 1
        while n < min(len(items), self.size) and self._key(items[n][1]) == first:
            n += 1
        return n

    def waiting(self) -> int:
        """Deliveries added and not yet handed out in a batch."""
        return sum(len(items) for items in self._open.values())

    def settled(self, tp: TP) -> None:
        """The partition's batch has an outcome; it is released with the next commit."""
        self._settled.add(tp)

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
        return min((d.due_at for items in self._open.values() for _, d in items), default=None)

    def wait_seconds(self, now: float, cap: float) -> float:
        waiting = [t for tp, t in self._since.items() if tp not in self._busy]
        if not waiting:
            return cap
        return max(0.0, min(cap, min(waiting) + self.max_age - now))

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._open if tps is None else tps):
            self._open.pop(tp, None)
            self._since.pop(tp, None)
        gone = set(self._busy if tps is None else tps)
        self._busy -= gone
        self._settled -= gone
