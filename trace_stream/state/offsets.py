"""In-flight bookkeeping: commit only the contiguous prefix of finished work.

Each consumed offset is started, then finished with the records it routes and the
effects to run once they are committed. `take` hands back, per partition, the
finished prefix: its records, the next offset to commit and its effects. A finished
offset behind an unfinished one waits, so a crash never skips unfinished work.

An offset started and not finished costs its place in an OrderedDict and nothing
more (`_RUNNING`, shared): the deliverer starts one for every delivery it holds until
due, 150,000 at once at 500 trades/s and a 5-minute delay. A slot with its lists is
made when the offset finishes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trace_stream.core.messages import TP, OutRecord

Effect = Callable[[], None]


@dataclass(slots=True)
class _Slot:
    """A finished offset: what to produce and run once it is committed."""

    records: list[OutRecord] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


_RUNNING = None
"""The value of an offset started and not finished."""


@dataclass
class Batch:
    records: list[OutRecord] = field(default_factory=list)
    offsets: dict[TP, int] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.offsets)


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[TP, OrderedDict[int, _Slot | None]] = {}
        self._unfinished: dict[TP, int] = {}

    def start(self, tp: TP, offset: int) -> None:
        slots = self._parts.setdefault(tp, OrderedDict())
        if offset not in slots or slots[offset] is not _RUNNING:
            self._unfinished[tp] = self._unfinished.get(tp, 0) + 1
        slots[offset] = _RUNNING

    def finish(
        self,
        tp: TP,
        offset: int,
        records: Iterable[OutRecord] = (),
        effects: Iterable[Effect] = (),
    ) -> None:
        slots = self._parts.get(tp)
        if slots is None or offset not in slots:
            return  # the partition was revoked or rewound meanwhile
        slot = slots[offset]
        if slot is _RUNNING:
            self._unfinished[tp] -= 1
            slot = slots[offset] = _Slot()
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
                if slot is _RUNNING:
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
