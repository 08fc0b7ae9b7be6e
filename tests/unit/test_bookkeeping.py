"""The offset tracker and the delay gate: pure bookkeeping of the delivery loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import trade_event
from trace_stream.batching import Batcher
from trace_stream.delay import DelayGate
from trace_stream.kafka import OutRecord
from trace_stream.offsets import OffsetTracker
from trace_stream.records import Origin, TraceDelivery
from trace_stream.redact import redact

A, B = ("t", 0), ("t", 1)


def test_commits_only_the_contiguous_finished_prefix() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12):
        t.start(A, offset)
    t.finish(A, 11, [OutRecord("x", b"11")])
    assert not t.take()  # 10 still running: nothing may be committed
    t.finish(A, 10)
    batch = t.take()
    assert batch.offsets == {A: 12}
    assert [r.value for r in batch.records] == [b"11"]
    t.finish(A, 12)
    assert t.take().offsets == {A: 13}


def test_partitions_are_independent_and_effects_wait_for_the_commit() -> None:
    ran: list[str] = []
    t = OffsetTracker()
    t.start(A, 0)
    t.start(B, 5)
    t.finish(B, 5, effects=[lambda: ran.append("alert")])
    batch = t.take()
    assert batch.offsets == {B: 6}
    assert ran == []
    for effect in batch.effects:
        effect()
    assert ran == ["alert"]
    assert t.unfinished() == 1


def test_forgotten_partitions_ignore_late_finishes() -> None:
    t = OffsetTracker()
    t.start(A, 0)
    t.forget([A])
    t.finish(A, 0)
    assert not t.take()


def test_gate_holds_until_due_and_bounds_the_poll_wait() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    g = DelayGate()
    assert g.wait_seconds(now, cap=0.5) == 0.5
    g.hold(A, now + timedelta(seconds=0.2))
    g.hold(B, now + timedelta(seconds=10))
    assert g.wait_seconds(now, cap=0.5) == 0.2
    assert g.release_due(now) == []
    assert g.release_due(now + timedelta(seconds=0.2)) == [A]
    assert g.is_held(B)
    assert not g.is_held(A)
    g.forget([B])
    assert g.release_due(now + timedelta(days=1)) == []


def test_batches_cut_at_size_age_and_key_and_wait_for_the_previous_commit() -> None:
    def item(day: int) -> TraceDelivery:
        closed = datetime(2026, 1, day, 12, tzinfo=UTC)
        return TraceDelivery(
            trace=redact(trade_event("T", closed_at=closed)),
            adapters=("file",),
            due_at=closed,
            origin=Origin(topic="in", partition=0, offset=0),
        )

    b = Batcher(size=3, max_age=10, key=lambda d: d.trace.closed_at.date())
    for offset, day in enumerate([1, 1, 2, 2, 2, 2]):
        b.add(A, offset, item(day), now=0)
    first = b.ready(now=1)  # the date changes after two: cut there
    assert [[o for o, _ in items] for _, items in first] == [[0, 1]]
    assert b.ready(now=1) == []  # busy until the first batch is committed
    b.settled(A)
    b.release(b.take_settled())
    assert [[o for o, _ in items] for _, items in b.ready(now=1)] == [[2, 3, 4]]  # size
    b.settled(A)
    b.release(b.take_settled())
    assert b.ready(now=5) == []  # one left, young
    assert [[o for o, _ in items] for _, items in b.ready(now=11)] == [[5]]  # age
