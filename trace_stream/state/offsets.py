"""In-flight bookkeeping: commit only the contiguous prefix of finished work.

Each consumed offset is started, then finished with the records it routes and the
effects to run once they are committed. `take` hands back, per partition, the
finished prefix: its records, the next offset to commit and its effects. A finished
offset behind an unfinished one waits, so a crash never skips unfinished work.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trace_stream.core.messages import TP, OutRecord

Effect = Callable[[], None]


@dataclass
class _Slot:
    done: bool = False
    records: list[OutRecord] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


@dataclass
class Batch:
    records: list[OutRecord] = field(default_factory=list)
    offsets: dict[TP, int] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.offsets)


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[TP, OrderedDict[int, _Slot]] = {}
        self._unfinished: dict[TP, int] = {}

    def start(self, tp: TP, offset: int) -> None:
        slots = self._parts.setdefault(tp, OrderedDict())
        old = slots.get(offset)
        if old is None or old.done:
            self._unfinished[tp] = self._unfinished.get(tp, 0) + 1
        slots[offset] = _Slot()

    def finish(
        self,
        tp: TP,
        offset: int,
        records: Iterable[OutRecord] = (),
        effects: Iterable[Effect] = (),
    ) -> None:
        slots = self._parts.get(tp)
        slot = slots.get(offset) if slots is not None else None
        if slot is None:
            return  # the partition was revoked or rewound meanwhile
        if not slot.done:
            self._unfinished[tp] -= 1
        slot.done = True
        slot.records.extend(records)
        slot.effects.extend(effects)

    def skip(self, tp: TP, offset: int) -> None:
        """An offset that needs no work (a record for another adapter)."""
        self.start(tp, offset)
        self.finish(tp, offset)

    def take(self, tps: Iterable[TP] | None = None) -> Batch:
        batch = Batch()
        for tp in list(self._parts if tps is None else tps):
            slots = self._parts.get(tp)
            while slots:
                offset, slot = next(iter(slots.items()))
                if not slot.done:
                    break
                slots.popitem(last=False)
                batch.records.extend(slot.records)
                batch.effects.extend(slot.effects)
                batch.offsets[tp] = offset + 1
        return batch

    def unfinished(self, tps: Iterable[TP] | None = None) -> int:
        """Offsets started and not finished (of `tps`); O(partitions)."""
        wanted = self._unfinished.keys() if tps is None else tps
        return sum(self._unfinished.get(tp, 0) for tp in wanted)

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        for tp in list(self._parts if tps is None else tps):
            self._parts.pop(tp, None)
            self._unfinished.pop(tp, None)
