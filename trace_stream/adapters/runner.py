"""One asyncio loop on a background thread, where adapters run their posts.

The Kafka loops are synchronous; they start coroutines here and never block on them,
so many posts are in flight while offsets are committed in order. `submit` gives a
future to wait on (occasional calls: alerts, closing adapters); `start_all` starts
posts by the thousand with one wake-up of the loop and nothing to wait on: each post
reports its own outcome (see `adapters.posting`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class Started:
    """A coroutine that `start_all` started on the loop; `cancel` from any thread."""

    __slots__ = ("_loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[Any] | None = None
        """Set on the loop's thread, before the coroutine takes its first step."""

    def cancel(self) -> None:
        """Cancel the task (nothing if it has ended)."""
        self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class AsyncRunner:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # The loop holds its tasks weakly: these are held here until they end (the
        # loop's thread only).
        self._running: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start_all(self, coros: Sequence[Coroutine[Any, Any, None]]) -> list[Started]:
        """Start each coroutine as a task, with one wake-up of the loop for all of them:
        a wake-up is a write to the loop's socket, and another thread's write waits for
        the GIL. Nothing comes back: a coroutine reports its own outcome, and no
        cross-thread future (a lock and a notify each) is made per post."""
        started = [Started(self.loop) for _ in coros]

        def start() -> None:
            for coro, handle in zip(coros, started, strict=True):
                task = handle.task = self.loop.create_task(coro)
                self._running.add(task)
                task.add_done_callback(self._running.discard)

        if coros:
            self.loop.call_soon_threadsafe(start)
        return started

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def close(self, timeout: float = 5) -> None:
        """Cancel what still runs, each task ending through its own clean-up (none is
        dropped unstarted), then stop the loop: within `timeout` even if a task ignores
        its cancellation or the loop is stuck."""
        if self.loop.is_closed():
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):  # a stuck loop: stop it all the same
            self.submit(self._cancel_all()).result(timeout / 2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self.loop.is_running():
            self.loop.close()

    async def _cancel_all(self) -> None:
        this = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not this]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
