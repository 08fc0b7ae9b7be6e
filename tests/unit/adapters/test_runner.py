"""AsyncRunner.start_all: every coroutine runs as a task of its own, started together,
and each can be cancelled from another thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.support import wait_for
from trace_stream.adapters.runner import AsyncRunner


@pytest.fixture
def runner():
    r = AsyncRunner()
    yield r
    r.close()


def test_start_all_runs_them_concurrently(runner: AsyncRunner) -> None:
    """All started by one wake-up, none waits for another."""
    started = asyncio.Event()
    count = 0
    done: list[int] = []

    async def wait_for_all(i: int) -> None:
        nonlocal count
        count += 1
        if count == 3:
            started.set()
        await asyncio.wait_for(started.wait(), 5)
        done.append(i)

    runner.start_all([wait_for_all(i) for i in range(3)])
    wait_for(lambda: sorted(done) == [0, 1, 2], timeout=5, what="all three to end")


def test_a_started_task_is_cancelled_from_another_thread(runner: AsyncRunner) -> None:
    running, cancelled = threading.Event(), threading.Event()

    async def forever() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    (handle,) = runner.start_all([forever()])
    wait_for(running.is_set, timeout=5, what="the task running")
    handle.cancel()
    wait_for(cancelled.is_set, timeout=5, what="the task cancelled")


def test_nothing_to_start(runner: AsyncRunner) -> None:
    assert runner.start_all([]) == []


def test_close_cancels_what_was_started_even_just_before_it() -> None:
    """A post started right before close is cancelled through its own clean-up, not
    dropped unstarted (a coroutine never awaited)."""
    runner = AsyncRunner()
    ended: list[str] = []

    async def post() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("cleaned up")

    runner.start_all([post(), post()])
    runner.close()
    assert ended == ["cleaned up", "cleaned up"]
    assert runner.loop.is_closed()


def test_close_is_bounded_when_a_task_ignores_its_cancellation() -> None:
    runner = AsyncRunner()
    running = threading.Event()

    async def stubborn() -> None:
        running.set()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    runner.start_all([stubborn()])
    wait_for(running.is_set, timeout=5, what="the task running")
    began = time.monotonic()
    runner.close(timeout=1)
    assert time.monotonic() - began < 2
