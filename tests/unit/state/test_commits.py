"""The deliverer's transactions beside its loop: one at a time, committed only once
confirmed, nothing at all when aborted, stalled past `STALLED` seconds. And the loops'
bookkeeping imports no I/O library."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import trade_event
from trace_stream.core.messages import TP, OutRecord
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.pipeline.redact import redact
from trace_stream.state import commits
from trace_stream.state.batching import Batcher
from trace_stream.state.commits import Commits
from trace_stream.state.offsets import OffsetTracker

A, B = ("delay", 0), ("delay", 1)


class Aborted(Exception):
    pass


class Producer:
    def __init__(self) -> None:
        self.started: list[tuple[list[OutRecord], dict[TP, int]]] = []
        self.futures: list[Future[None]] = []

    def start_commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> Future[None]:
        self.started.append((list(records), dict(offsets)))
        self.futures.append(Future())
        return self.futures[-1]


class Group:
    def __init__(self) -> None:
        self.committed: dict[TP, int] = {}

    def group_metadata(self) -> Any:
        return None

    def mark_committed(self, offsets: Mapping[TP, int]) -> None:
        self.committed.update(offsets)


class Setup:
    def __init__(self, batcher: Batcher | None = None) -> None:
        self.now = 100.0
        self.tracker = OffsetTracker()
        self.producer, self.group = Producer(), Group()
        self.commits = Commits(
            self.tracker,
            self.producer,
            self.group,
            aborted=Aborted,
            interval=0.1,
            batcher=batcher,
            monotonic=lambda: self.now,
        )

    def finished(self, tp: TP, offset: int, effect: Any = None) -> None:
        self.tracker.start(tp, offset)
        self.tracker.finish(
            tp, offset, [OutRecord("out", b"%d" % offset)], [effect] if effect else []
        )


def delivery() -> TraceDelivery:
    due = datetime(2026, 1, 1, tzinfo=UTC)
    return TraceDelivery(
        trace=redact(trade_event("T-1", closed_at=due - timedelta(minutes=5))),
        adapters=("file",),
        due_at=due,
        origin=Origin(topic="in", partition=0, offset=0),
    )


def test_one_transaction_at_a_time_and_nothing_counts_before_it_is_confirmed() -> None:
    ran: list[str] = []
    batcher = Batcher(size=1, max_age=0)
    s = Setup(batcher)
    s.finished(A, 0, lambda: ran.append("alert"))
    batcher.add(A, 0, delivery(), s.now)
    assert batcher.ready(s.now)  # A's batch is out: its next waits for the commit
    batcher.settled(A)
    s.commits.start()
    assert s.producer.started == [([OutRecord("out", b"0")], {A: 1})]
    s.finished(A, 1)
    s.commits.start()  # one under way: no second transaction
    assert len(s.producer.started) == 1
    assert s.commits.under_way
    assert s.commits.settle() is False  # not through yet
    batcher.add(A, 1, delivery(), s.now)
    assert (s.group.committed, ran, batcher.ready(s.now)) == ({}, [], [])
    s.producer.futures[0].set_result(None)
    assert s.commits.settle() is False
    assert (s.group.committed, ran) == ({A: 1}, ["alert"])
    assert [(tp, [o for o, _ in items]) for tp, items in batcher.ready(s.now)] == [(A, [1])]
    assert not s.commits.under_way
    s.commits.start()
    assert s.producer.started[1][1] == {A: 2}


def test_an_aborted_transaction_counts_nothing_and_says_so() -> None:
    ran: list[str] = []
    s = Setup()
    s.finished(A, 0, lambda: ran.append("alert"))
    s.commits.start()
    s.producer.futures[0].set_exception(Aborted())
    assert s.commits.settle() is True
    assert (s.group.committed, ran) == ({}, [])
    assert not s.commits.under_way


def test_a_failure_other_than_an_abort_is_raised() -> None:
    s = Setup()
    s.finished(A, 0)
    s.commits.start()
    s.producer.futures[0].set_exception(RuntimeError("fenced"))
    with pytest.raises(RuntimeError, match="fenced"):
        s.commits.settle()


def test_settle_with_wait_waits_for_the_transaction() -> None:
    s = Setup()
    s.finished(B, 4)
    s.commits.start()
    threading.Timer(0.05, s.producer.futures[0].set_result, [None]).start()
    assert s.commits.settle(wait=True) is False
    assert s.group.committed == {B: 5}


def test_only_the_partitions_asked_for_are_committed() -> None:
    s = Setup()
    s.finished(A, 0)
    s.finished(B, 0)
    s.commits.start([B])
    assert s.producer.started[0][1] == {B: 1}


def test_a_transaction_stalls_past_STALLED_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup()
    assert not s.commits.stalled()  # none under way
    s.finished(A, 0)
    s.commits.start()
    s.now += 1.0
    assert not s.commits.stalled()
    s.now += 0.01
    assert s.commits.stalled()
    monkeypatch.setattr(commits, "STALLED", 120.0)  # read at every check
    assert not s.commits.stalled()
    s.producer.futures[0].set_result(None)
    s.commits.settle()
    s.now += 500
    assert not s.commits.stalled()


def test_due_counts_from_the_last_start_even_with_nothing_to_commit() -> None:
    s = Setup()
    assert s.commits.due()
    s.commits.start()  # nothing finished: no transaction, but the interval restarts
    assert s.producer.started == []
    assert not s.commits.due()
    s.now += 0.09
    assert not s.commits.due()
    s.now += 0.01
    assert s.commits.due()
