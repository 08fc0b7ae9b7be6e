"""Posts in flight: one adapter's deliveries running on the shared asyncio loop.

The Kafka loop stays synchronous: it submits Work here, never blocks on a post, and
picks up finished ones with `finished()`: each post puts its own outcome in a queue
on its way out, so no cross-thread future is made per post. Every post ends in an
Outcome: an adapter that raises by mistake becomes a Retriable outcome, never an
error in the loop, and a post without an outcome `timeout` seconds after it was
submitted is given Retriable("timeout") by `finished()` itself, in the caller's
thread, and its task is cancelled. That deadline holds even when the asyncio loop is
stuck, and costs no timer per post on the loop (the adapters bound their own calls
more tightly).
"""

from __future__ import annotations

import itertools
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
from trace_stream.adapters.runner import AsyncRunner, Started
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
        self._ids = itertools.count()
        self._posts: dict[int, tuple[Work, Started]] = {}
        # Each post, as it ends, puts its outcome in `_done` (deque appends are atomic),
        # on the loop's thread, and sets `_some_done` if it is not set: picking up what
        # finished costs what finished, and waiting for the first of them one Event.
        self._done: deque[tuple[int, Outcome]] = deque()
        self._some_done = threading.Event()
        # (deadline, post) in the order submitted: deadlines only grow along it.
        self._deadlines: deque[tuple[float, int]] = deque()
        self._monotonic = monotonic
        # Decided once: a runtime-checkable Protocol check costs ~10 us per call.
        self._batches = isinstance(adapter, BatchAdapter)

    def __len__(self) -> int:
        return len(self._posts)

    def submit(self, works: list[Work]) -> None:
        """Start the posts, all with one wake-up of the asyncio loop."""
        if not works:
            return
        ids = [next(self._ids) for _ in works]
        started = self._runner.start_all(
            [self._post(i, w) for i, w in zip(ids, works, strict=True)]
        )
        deadline = self._monotonic() + self._timeout
        for i, work, handle in zip(ids, works, started, strict=True):
            self._posts[i] = (work, handle)
            self._deadlines.append((deadline, i))

    def finished(self) -> list[tuple[Work, Outcome]]:
        """Posts that have an outcome; they are no longer tracked here (nor are those
        forgotten meanwhile)."""
        self._some_done.clear()  # before looking: a post finishing from now on sets it
        out = []
        while self._done:
            i, outcome = self._done.popleft()
            post = self._posts.pop(i, None)
            if post is not None:
                out.append((post[0], outcome))
        now = self._monotonic()
        while self._deadlines:
            deadline, i = self._deadlines[0]
            if i in self._posts and deadline > now:
                break  # the oldest post still running has time left, and so do the rest
            self._deadlines.popleft()
            post = self._posts.pop(i, None)
            if post is not None:
                work, handle = post
                handle.cancel()
                out.append((work, Retriable("timeout", f"no outcome within {self._timeout}s")))
        return out

    def wait(self, timeout: float, tps: Iterable[TP] | None = None, first: bool = False) -> None:
        """Block up to `timeout` for all posts (of `tps`) to finish; with `first` and no
        `tps`, until any post finished since the last `finished()`."""
        if first and tps is None:
            if not self._done:
                self._some_done.wait(timeout)
            return
        wanted = None if tps is None else set(tps)
        deadline = time.monotonic() + timeout
        while True:
            self._some_done.clear()  # then look: a post ending from now on sets it
            ended = {i for i, _ in list(self._done)}
            if all(
                i in ended for i, (w, _) in self._posts.items() if wanted is None or w.tp in wanted
            ):
                return
            left = deadline - time.monotonic()
            if left <= 0 or not self._some_done.wait(left):
                return

    def oldest_due(self) -> datetime | None:
        """The earliest due time among the posts in flight."""
        return min((d.due_at for w, _ in self._posts.values() for _, d in w.items), default=None)

    def forget(self, tps: Iterable[TP] | None = None) -> None:
        """Stop tracking posts (of `tps`); their outcomes, when they come, are ignored."""
        wanted = None if tps is None else set(tps)
        for i, (work, _) in list(self._posts.items()):
            if wanted is None or work.tp in wanted:
                del self._posts[i]

    async def _post(self, i: int, work: Work) -> None:
        started = time.perf_counter()
        try:
            outcome = await self._deliver(work)
        except Exception as exc:  # an adapter bug must not kill the loop
            log.exception("adapter raised", extra={"adapter": self.adapter.name})
            outcome = Retriable("unexpected", type(exc).__name__)
        finally:
            self._observe(time.perf_counter() - started)
        self._done.append((i, outcome))  # a cancelled post never gets here
        if not self._some_done.is_set():  # appended first: see `finished`
            self._some_done.set()

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
