"""Poster: every post ends in an outcome, a stuck one at its deadline, in the caller's
thread, with its task cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.support import trade_event, wait_for
from trace_stream.adapters.posting import Poster, Work
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.core.outcomes import Delivered, Outcome, Retriable
from trace_stream.core.records import Origin, Trace, TraceDelivery
from trace_stream.pipeline.redact import redact

AT = datetime(2026, 1, 1, 12, tzinfo=UTC)
TP0 = ("delay", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tracker:
    """Answers at once, except for trades named 'stuck', which never get an answer."""

    name = "webhook"

    def __init__(self) -> None:
        self.stuck = threading.Event()
        self.cancelled = threading.Event()

    async def deliver(self, trace: Trace, idempotency_key: str) -> Outcome:
        if trace.trade_id.startswith("stuck"):
            self.stuck.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return Delivered()

    async def aclose(self) -> None:
        pass


def work(trade_id: str, offset: int) -> Work:
    delivery = TraceDelivery(
        trace=redact(trade_event(trade_id, closed_at=AT)),
        adapters=("webhook",),
        due_at=AT,
        origin=Origin(topic="trade.closed", partition=0, offset=offset),
    )
    return Work(TP0, ((offset, delivery),))


@pytest.fixture
def runner() -> Iterator[AsyncRunner]:
    r = AsyncRunner()
    yield r
    r.close()


def collect(poster: Poster, n: int) -> list[tuple[str, Outcome]]:
    """Pick up finished posts until `n` have come (polling, with a deadline)."""
    got: list[tuple[str, Outcome]] = []

    def enough() -> bool:
        got.extend((w.items[0][1].trace.trade_id, o) for w, o in poster.finished())
        return len(got) >= n

    wait_for(enough, timeout=5, what=f"{n} outcomes")
    return got


def test_a_post_without_an_outcome_times_out_at_its_deadline_and_is_cancelled(
    runner: AsyncRunner,
) -> None:
    clock, tracker = Clock(), Tracker()
    poster = Poster(tracker, runner, timeout=60, monotonic=clock)
    poster.submit([work("stuck-1", 0), work("T-2", 1)])
    assert collect(poster, 1) == [("T-2", Delivered())]
    clock.now += 59.9
    assert poster.finished() == [] and len(poster) == 1, "timed out early"
    clock.now += 0.1
    ((w, outcome),) = poster.finished()
    assert w.items[0][1].trace.trade_id == "stuck-1"
    assert outcome == Retriable("timeout", "no outcome within 60s")
    assert len(poster) == 0
    wait_for(tracker.cancelled.is_set, timeout=5, what="the stuck post's task cancelled")
    assert poster.finished() == [], "the cancelled post came back a second time"


def test_posts_that_finish_in_time_never_time_out(runner: AsyncRunner) -> None:
    clock, tracker = Clock(), Tracker()
    poster = Poster(tracker, runner, timeout=1, monotonic=clock)
    poster.submit([work(f"T-{i}", i) for i in range(3)])
    assert sorted(t for t, _ in collect(poster, 3)) == ["T-0", "T-1", "T-2"]
    clock.now += 10
    poster.submit([work("stuck-3", 3)])
    # Running before it is cancelled: a task cancelled before its first step, with the
    # loop closed right after, leaves a coroutine never awaited (a warning at GC).
    wait_for(tracker.stuck.is_set, timeout=5, what="the stuck post running")
    clock.now += 0.5
    assert poster.finished() == []  # the new post has half its second left
    clock.now += 0.5
    assert [o.reason for _, o in poster.finished() if isinstance(o, Retriable)] == ["timeout"]
    wait_for(tracker.cancelled.is_set, timeout=5, what="the stuck post's task cancelled")
