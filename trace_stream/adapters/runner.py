"""One asyncio loop on a background thread, where adapters run their posts.

The Kafka loops are synchronous; they submit coroutines here and collect the
futures, so many posts are in flight while offsets are committed in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class AsyncRunner:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # The task behind each future of `submit_all`, until it ends (the loop's thread
        # only): for `cancel`.
        self._tasks: dict[concurrent.futures.Future[Any], asyncio.Task[Any]] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def submit_all(
        self, coros: Sequence[Coroutine[Any, Any, T]]
    ) -> list[concurrent.futures.Future[T]]:
        """`submit` each, with one wake-up of the loop for all of them: a wake-up is a
        write to the loop's socket, and another thread's write waits for the GIL."""
        futures: list[concurrent.futures.Future[T]] = [concurrent.futures.Future() for _ in coros]

        def start() -> None:
            for coro, future in zip(coros, futures, strict=True):
                task = self.loop.create_task(coro)
                self._tasks[future] = task
                task.add_done_callback(functools.partial(self._settle, future))

        if coros:
            self.loop.call_soon_threadsafe(start)
        return futures

    def cancel(self, future: concurrent.futures.Future[Any]) -> None:
        """Cancel the task behind a future of `submit_all` (from any thread; nothing if
        it has ended). The future is then cancelled, unless the task swallows it."""

        def cancel() -> None:
            task = self._tasks.get(future)
            if task is not None:
                task.cancel()

        self.loop.call_soon_threadsafe(cancel)

    def _settle(self, future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
        """Give a task's outcome to the future another thread waits on (as
        `asyncio.run_coroutine_threadsafe` does)."""
        self._tasks.pop(future, None)
        if task.cancelled():
            future.cancel()
        if not future.set_running_or_notify_cancel():
            return
        exc = task.exception()
        if exc is None:
            future.set_result(task.result())
        else:
            future.set_exception(exc)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()
