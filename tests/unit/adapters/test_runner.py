"""AsyncRunner.submit_all: every coroutine's outcome reaches its own future."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from trace_stream.adapters.runner import AsyncRunner


@pytest.fixture
def runner():
    r = AsyncRunner()
    yield r
    r.close()


def test_submit_all_gives_each_future_its_coroutines_outcome(runner: AsyncRunner) -> None:
    async def value(i: int) -> int:
        await asyncio.sleep(0.001 * (i % 3))
        return i

    async def fail() -> int:
        raise ValueError("boom")

    futures = runner.submit_all([value(0), fail(), value(2), value(3)])
    _, pending = concurrent.futures.wait(futures, timeout=5)
    assert not pending
    assert [f.result() for i, f in enumerate(futures) if i != 1] == [0, 2, 3]
    with pytest.raises(ValueError, match="boom"):
        futures[1].result()


def test_submit_all_runs_them_concurrently(runner: AsyncRunner) -> None:
    """All started by one wake-up, none waits for another."""
    started = asyncio.Event()
    count = 0

    async def wait_for_all() -> None:
        nonlocal count
        count += 1
        if count == 3:
            started.set()
        await asyncio.wait_for(started.wait(), 5)

    futures = runner.submit_all([wait_for_all() for _ in range(3)])
    for f in futures:
        assert f.result(timeout=5) is None


def test_a_cancelled_task_cancels_its_future(runner: AsyncRunner) -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    (future,) = runner.submit_all([cancelled()])
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=5)


def test_nothing_to_submit(runner: AsyncRunner) -> None:
    assert runner.submit_all([]) == []
