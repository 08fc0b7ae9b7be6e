"""The deliverer's transactions, one at a time, beside its loop. Pure bookkeeping.

`start` hands the contiguous finished prefix (`OffsetTracker.take`) to the producer,
whose transaction runs on a thread of its own: the loop goes on posting while the
broker answers, since a loop that waited would hold back every post due meanwhile.
A caller may rely on:

- at most one transaction under way: `start` does nothing while one is;
- `due()` once `interval` seconds have passed since the last `start` (which counts
  even when there was nothing to commit), or as soon as a batch adapter's batch is
  settled: its partition's next batch waits for that commit;
- nothing counts as committed before the broker confirmed it: only then does
  `settle` mark the offsets committed on the consumer, release the batch adapter's
  partitions and run the effects (alerts), in that order;
- an aborted transaction does none of that: `settle` returns True and the caller
  rewinds. Any other failure is the producer's, and `settle` raises it;
- `stalled()` once the transaction has been under way more than `STALLED` seconds
  (Kafka is in trouble): the loop then starts no new post, as an abort means posting
  again all that was posted since.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from trace_stream.core.messages import TP, OutRecord
from trace_stream.state.batching import Batcher
from trace_stream.state.offsets import Batch, OffsetTracker

STALLED = 1.0
"""Seconds after which a transaction under way holds back new posts (a healthy one
takes tens of milliseconds). Read at every check, so a test may change it."""


class Transactions(Protocol):
    """The transactional producer: `start_commit`'s future is done within its bounds,
    with None, the abort exception, or a failure of the producer's own."""

    def start_commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> Future[None]: ...


class Group(Protocol):
    """The consumer whose group the offsets are committed for."""

    def group_metadata(self) -> Any: ...

    def mark_committed(self, offsets: Mapping[TP, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class Committing:
    """A transaction under way: the finished work it commits, and the batch adapter's
    partitions to release once it is through."""

    done: Future[None]
    batch: Batch
    settled: set[TP]
    started: float  # monotonic seconds


class Commits:
    def __init__(
        self,
        tracker: OffsetTracker,
        producer: Transactions,
        consumer: Group,
        *,
        aborted: type[BaseException],
        interval: float,
        batcher: Batcher | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`aborted`: the exception with which the producer reports an abort."""
        self._tracker = tracker
        self._producer = producer
        self._consumer = consumer
        self._aborted = aborted
        self._interval = interval
        self._batcher = batcher
        self._monotonic = monotonic
        self._under_way: Committing | None = None
        self._last = 0.0

    @property
    def under_way(self) -> bool:
        return self._under_way is not None

    def stalled(self) -> bool:
        """Has the transaction under way taken longer than `STALLED`?"""
        c = self._under_way
        return c is not None and self._monotonic() - c.started > STALLED

    def due(self) -> bool:
        """Every `interval`; at once when a batch waits for its commit (its partition's
        next batch waits for that)."""
        if self._batcher is not None and self._batcher.has_settled():
            return True
        return self._monotonic() - self._last >= self._interval

    def start(self, tps: list[TP] | None = None) -> None:
        """Start the transaction of the finished prefix (of `tps`), unless one is under
        way or nothing is finished."""
        if self._under_way is not None:
            return
        self._last = self._monotonic()
        batch = self._tracker.take(tps)
        if not batch:
            return
        settled = self._batcher.take_settled(tps) if self._batcher is not None else set()
        done = self._producer.start_commit(
            batch.records, batch.offsets, self._consumer.group_metadata()
        )
        self._under_way = Committing(done, batch, settled, self._monotonic())

    def settle(self, wait: bool = False) -> bool:
        """Once the transaction under way is through (with `wait`, wait for it, within
        the producer's bounds), make it count. True when it was aborted: the caller
        must forget everything uncommitted and read it again."""
        c = self._under_way
        if c is None or not (wait or c.done.done()):
            return False
        self._under_way = None
        try:
            c.done.result()
        except self._aborted:
            return True
        self._consumer.mark_committed(c.batch.offsets)
        if self._batcher is not None:
            self._batcher.release(c.settled)
        for effect in c.batch.effects:
            effect()
        return False
