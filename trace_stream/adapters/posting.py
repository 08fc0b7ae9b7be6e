"""Posts in flight: one adapter's deliveries running on the shared asyncio loop.

The Kafka loop stays synchronous: it submits Work here, never blocks on a post, and
picks up finished ones with `finished()`. Every post ends in an Outcome: an adapter
that raises by mistake becomes a Retriable outcome, never an error in the loop, and
a post without an outcome `timeout` seconds after it was submitted is given
Retriable("timeout") by `finished()` itself, in the caller's thread, and its task is
cancelled. That deadline holds even when the asyncio loop is stuck, and costs no
timer per post on the loop (the adapters bound their own calls more tightly).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from trace_stream.adapters.base import (
    Adapter,
    BatchAdapter,
    Outcome,
    Retriable,
    TraceBatch,
    idempotency_key,
)
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.core.messages import TP
from trace_stream.state.batching import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Work:
    """One post: a single delivery, or a batch for a batch adapter, from one partition."""

    tp: TP
    items: tuple[Item, ...]


class Poster:
    def __init__(
        self,
        adapter: Adapter | BatchAdapter,
        runner: AsyncRunner,
        timeout: float,
        observe: Callable[[float], None] = lambda seconds: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`observe` is given each post's duration in seconds, success or not."""
        self.adapter = adapter
        self._runner = runner
        self._observe = observe
        self._timeout = timeout
        self._posts: dict[concurrent.futures.Future[Outcome], Work] = {}
        # Each post, as it finishes, joins `_done` (deque appends are atomic), and
        # `_some_done` is set: picking up finished posts costs what finished, not a look
        # at all 64 in flight each step, and waiting for the first of them one Event,
        # not a waiter put on and taken off each future (concurrent.futures.wait).
        self._done: deque[concurrent.futures.Future[Outcome]] = deque()
        self._some_done = threading.Event()
        # (deadline, future) in the order submitted: deadlines only grow along it.
        self._deadlines: deque[tuple[float, concurrent.futures.Future[Outcome]]] = deque()
        self._monotonic = monotonic
        # Decided once: a runtime-checkable Protocol check costs ~10 us per call.
        self._batches = isinstance(adapter, BatchAdapter)

    def __len__(self) -> int:
        return len(self._posts)

    def submit(self, works: list[Work]) -> None:
        """Start the posts, all with one wake-up of the asyncio loop."""
        futures = self._runner.submit_all([self._post(work) for work in works])
        self._posts.update(zip(futures, works, strict=True))
        deadline = self._monotonic() + self._timeout
        for future in futures:
            self._deadlines.append((deadline, future))
            future.add_done_callback(self._one_done)

    def _one_done(self, future: concurrent.futures.Future[Outcome]) -> None:
        self._done.append(future)
        # Appended before the look: if the flag is still set, `finished()` has not
        # cleared it yet and will find this post (setting an Event takes its lock).
        if not self._some_done.is_set():
            self._some_done.set()

    def finished(self) -> list[tuple[Work, Outcome]]:
        """Posts that have an outcome; they are no longer tracked here (nor are those
        forgotten meanwhile)."""
        self._some_done.clear()  # before looking: a post finishing from now on sets it
        out = []
        while self._done:
            future = self._done.popleft()
            work = self._posts.pop(future, None)
            if work is not None:
                out.append((work, future.result()))
        now = self._monotonic()
        while self._deadlines:
            deadline, future = self._deadlines[0]
            if future in self._posts and deadline > now:
                break  # the oldest post still running has time left, and so do the rest
            self._deadlines.popleft()
            work = self._posts.pop(future, None)
            if work is not None:
                self._runner.cancel(future)
                out.append((work, Retriable("timeout", f"no outcome within {self._timeout}s")))
        return out

    def wait(self, timeout: float, tps: Iterable[TP] | None = None, first: bool = False) -> None:
        """Block up to `timeout` for all (or, with `first`, any) posts of `tps` to finish.
        With `first` and no `tps`: until any post finished since the last `finished()`."""
        if first and tps is None:
            self._some_done.wait(timeout)
            return
        wanted = None if tps is None else set(tps)
        pending = [f for f, w in self._posts.items() if wanted is None or w.tp in wanted]
        if pending:
            when = "FIRST_COMPLETED" if first else "ALL_COMPLETED"
            concurrent.futures.wait(pending, timeout=timeout, return_when=when)

    def oldest_due(self) -> datetime | None:
        """The earliest due time among the posts in flight."""
        return min((d.due_at for w in self._posts.values() for _, d in w.items), default=None)

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        """Stop tracking posts (of `tps`); their outcomes, when they come, are ignored."""
        wanted = None if tps is None else set(tps)
        for future, work in list(self._posts.items()):
            if wanted is None or work.tp in wanted:
                del self._posts[future]

    async def _post(self, work: Work) -> Outcome:
        started = time.perf_counter()
        try:
            return await self._deliver(work)
        except Exception as exc:  # an adapter bug must not kill the loop
            log.exception("adapter raised", extra={"adapter": self.adapter.name})
            return Retriable("unexpected", type(exc).__name__)
        finally:
            self._observe(time.perf_counter() - started)

    async def _deliver(self, work: Work) -> Outcome:
        if self._batches:
            sink = cast(BatchAdapter, self.adapter)
            traces = tuple(d.trace for _, d in work.items)
            offsets = tuple(o for o, _ in work.items)
            batch = TraceBatch(work.tp[0], work.tp[1], offsets[0], traces, offsets)
            return await sink.deliver_batch(batch)
        adapter = cast(Adapter, self.adapter)
        (_, delivery), *_ = work.items
        key = idempotency_key(delivery.trace.trade_id, adapter.name)
        return await adapter.deliver(delivery.trace, key)
