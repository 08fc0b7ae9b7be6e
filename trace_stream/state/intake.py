"""What the deliverer reads, within its buffer budget. Pure bookkeeping.

Two bounds, both spent at once pause reading: the bytes held ahead (`held_bytes()`,
what the look-ahead accounts for the records waiting to fall due) at most
`max_bytes`, which is what grows with rate x delay and what memory is sized by; and
at most `limit` unfinished deliveries (read and not finished: held, batching or in
flight), a count for the configurations that ask for one. A caller may rely on:

- `admit(m)` is True when the record may be taken in; its partition's next read
  position is then past it. A record read with either budget spent pauses its
  partition, which is sought back to it: read again after the resume, never lost.
  A record of a paused partition (fetched before the pause) is not admitted either.
  The bytes held exceed `max_bytes` by one record at most;
- `throttle()` resumes the paused partitions once a tenth of each budget is free, not
  at the first free slot, which would pause and resume once per record;
- `forget(tps)` (every partition when None), after a rewind or a revoke, resumes those
  partitions and forgets their read positions;
- `positions` is the next offset to read per partition as of the last `snapshot()`,
  a dict replaced whole, so another thread may read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from trace_stream.core.messages import TP, Message

log = logging.getLogger(__name__)


def budget(max_buffered: int, max_in_flight: int, batch_size: int = 0) -> int:
    """The buffer's size: room for every post in flight and, for a batch adapter,
    for whole batches, one in flight and one filling."""
    return max(max_buffered, max_in_flight, 2 * batch_size)


class Pausable(Protocol):
    def pause(self, tps: Iterable[TP]) -> None: ...

    def resume(self, tps: Iterable[TP]) -> None: ...

    def seek(self, tp: TP, offset: int) -> None: ...


class Intake:
    def __init__(
        self,
        consumer: Pausable,
        limit: int,
        unfinished: Callable[[], int],
        *,
        max_bytes: int,
        held_bytes: Callable[[], int],
    ) -> None:
        """`unfinished()`: how many deliveries read are not finished yet; `held_bytes()`:
        the bytes the records waiting to fall due take."""
        self.limit = limit
        self.max_bytes = max_bytes
        self._consumer = consumer
        self._unfinished = unfinished
        self._held_bytes = held_bytes
        self._paused: set[TP] = set()
        self._next: dict[TP, int] = {}
        self.positions: dict[TP, int] = {}

    def room(self) -> int:
        """How many records may be read now: what the count allows, and no more than
        the bytes left hold at the average so far (plus one, to reach the budget).
        Reading past it would pause and seek back every partition read too far, which
        drops what the client fetched ahead for them."""
        held, unfinished = self._held_bytes(), self._unfinished()
        if held >= self.max_bytes:
            return 0
        room = self.limit - unfinished
        if held and unfinished:
            room = min(room, (self.max_bytes - held) * unfinished // held + 1)
        return max(0, room)

    def full(self) -> bool:
        return self._unfinished() >= self.limit or self._held_bytes() >= self.max_bytes

    def admit(self, m: Message) -> bool:
        if m.tp in self._paused:
            return False  # fetched past the pause point; read again after the resume
        if self.full():
            self._consumer.pause([m.tp])
            self._consumer.seek(m.tp, m.offset)
            self._paused.add(m.tp)
            self._next[m.tp] = m.offset
            log.debug(
                "buffer full, partition paused", extra={"topic": m.topic, "partition": m.partition}
            )
            return False
        self._next[m.tp] = m.offset + 1
        return True

    def throttle(self) -> None:
        if not self._paused:
            return
        count_free = self._unfinished() <= self.limit - max(1, self.limit // 10)
        if count_free and self._held_bytes() <= self.max_bytes - max(1, self.max_bytes // 10):
            self._consumer.resume(list(self._paused))
            self._paused.clear()

    def snapshot(self) -> None:
        self.positions = dict(self._next)

    def forget(self, tps: list[TP] | None = None) -> None:
        paused = set(self._paused) if tps is None else self._paused.intersection(tps)
        if paused:
            self._consumer.resume(list(paused))
            self._paused -= paused
        for tp in list(self._next if tps is None else tps):
            self._next.pop(tp, None)
