"""The offset tracker, the look-ahead buffers and the batcher: pure bookkeeping of the
delivery loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import trade_event
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.pipeline.redact import redact
from trace_stream.state.batching import Batcher
from trace_stream.state.lookahead import InOrder, Lookahead, Timers
from trace_stream.state.offsets import OffsetTracker

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


def test_timers_release_each_record_at_its_own_due_time_whatever_the_read_order() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    timers = Timers()
    # Read in offset order; due in another order. A record not due holds back nothing.
    for offset, due_in in enumerate([60, 0, 30, -5, 0]):
        timers.add(A, offset, t0 + timedelta(seconds=due_in), b"T%d" % offset)
    assert len(timers) == 5
    assert timers.size == sum(timers.cost(b"T%d" % o) for o in range(5))
    assert timers.oldest_due() == t0 - timedelta(seconds=5)
    assert [o for _, o, _ in timers.pop_due(t0, limit=2)] == [3, 1]  # earliest due first
    assert timers.pop_due(t0, limit=10) == [(A, 4, b"T4")]
    assert timers.pop_due(t0, limit=10) == []
    assert timers.next_due() == t0 + timedelta(seconds=30)
    assert timers.size == timers.cost(b"T0") + timers.cost(b"T2")
    assert [o for _, o, _ in timers.pop_due(t0 + timedelta(seconds=59), 10)] == [2]
    timers.forget([A])
    assert len(timers) == 0
    assert timers.size == 0
    assert timers.next_due() is None


def test_due_times_keep_their_microseconds() -> None:
    """Held as integer microseconds: a record due a microsecond after `now` is not due."""
    due = datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC)
    for ahead in (Timers(), InOrder()):
        ahead.add(A, 0, due, b"x")
        assert ahead.pop_due(due - timedelta(microseconds=1), limit=1) == []
        assert ahead.next_due() == due
        assert ahead.pop_due(due, limit=1) == [(A, 0, b"x")]


def test_in_order_releases_a_partition_only_from_its_head() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = InOrder()
    ahead.add(A, 0, t0 + timedelta(seconds=10), b"T0")  # holds A
    ahead.add(A, 1, t0 - timedelta(seconds=20), b"T1")  # due, behind it
    ahead.add(B, 0, t0, b"T2")
    assert ahead.pop_due(t0, limit=10) == [(B, 0, b"T2")]
    # The record behind the held head is overdue: the due lag must see it.
    assert ahead.oldest_due() == t0 - timedelta(seconds=20)
    assert ahead.next_due() == t0 + timedelta(seconds=10)
    assert ahead.size == ahead.cost(b"T0") + ahead.cost(b"T1")
    later = t0 + timedelta(seconds=10)
    assert [o for _, o, _ in ahead.pop_due(later, limit=10)] == [0, 1]
    assert len(ahead) == 0
    assert ahead.size == 0
    assert ahead.oldest_due() is None


def _two_partitions_due(t0: datetime, records: int = 4) -> InOrder:
    """A and B with `records` each, all due at `t0`, added alternately."""
    ahead = InOrder()
    for offset in range(records):
        ahead.add(A, offset, t0, b"a")
        ahead.add(B, offset, t0, b"b")
    return ahead


def test_in_order_serves_the_partition_a_limit_cut_short_last() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = _two_partitions_due(t0)
    assert [(tp, o) for tp, o, _ in ahead.pop_due(t0, limit=3)] == [(A, 0), (A, 1), (A, 2)]
    assert [(tp, o) for tp, o, _ in ahead.pop_due(t0, limit=3)] == [(B, 0), (B, 1), (B, 2)]
    assert [(tp, o) for tp, o, _ in ahead.pop_due(t0, limit=3)] == [(A, 3), (B, 3)]


def test_in_order_takes_at_most_each_partitions_room() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = _two_partitions_due(t0)
    room = {A: 1, B: 3}
    taken = ahead.pop_due(t0, limit=10, room=room.__getitem__)
    assert [(tp, o) for tp, o, _ in taken] == [(A, 0), (B, 0), (B, 1), (B, 2)]
    room = {A: 0, B: 5}
    assert [(tp, o) for tp, o, _ in ahead.pop_due(t0, 10, room.__getitem__)] == [(B, 3)]
    assert len(ahead) == 3


@settings(max_examples=200, deadline=None)
@given(
    dues=st.lists(st.integers(-100, 100), max_size=60),
    checks=st.lists(st.tuples(st.integers(-120, 120), st.integers(1, 10)), max_size=20),
    ordered=st.booleans(),
    forgotten=st.sets(st.integers(0, 2), max_size=3),
)
def test_lookahead_never_releases_early_and_loses_nothing(dues, checks, ordered, forgotten) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ahead: Lookahead = InOrder() if ordered else Timers()
    due_of: dict[int, datetime] = {}
    for offset, due in enumerate(dues):
        due_of[offset] = t0 + timedelta(seconds=due)
        ahead.add(("t", offset % 3), offset, due_of[offset], b"x" * offset)
    released: list[int] = []
    for at, limit in sorted(checks):
        now = t0 + timedelta(seconds=at)
        out = ahead.pop_due(now, limit)
        assert len(out) <= limit
        assert all(due_of[o] <= now for _, o, _ in out), "released early"
        assert all(raw == b"x" * o for _, o, raw in out)
        if ordered:  # per partition, in offset order
            for tp in {tp for tp, _, _ in out}:
                got = [o for p, o, _ in out if p == tp]
                assert got == sorted(got)
        released += [o for _, o, _ in out]
    held = set(range(len(dues))) - set(released)
    assert ahead.size == sum(ahead.cost(b"x" * o) for o in held)
    ahead.forget([("t", p) for p in forgotten])
    kept = {o for o in held if o % 3 not in forgotten}
    assert len(ahead) == len(kept)
    assert ahead.size == sum(ahead.cost(b"x" * o) for o in kept)
    rest = ahead.pop_due(t0 + timedelta(seconds=1000), limit=len(dues) + 1)
    assert sorted(o for _, o, _ in rest) == sorted(kept)
    assert len(ahead) == 0
    assert ahead.size == 0


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


def test_an_offset_started_again_keeps_its_state_and_one_started_late_takes_its_place() -> None:
    t = OffsetTracker()
    for offset in (3, 5, 9):
        t.start(A, offset)
    t.finish(A, 3, [OutRecord("x", b"3")])
    t.start(A, 3)  # as a dead letter of a held record starts it: no change
    t.start(A, 5)
    t.start(A, 7)  # behind the last started: in its place, not at the back
    assert t.unfinished() == 3
    t.finish(A, 5)
    assert t.take().offsets == {A: 6}  # 7 is unfinished: no further
    t.finish(A, 9)
    assert not t.take()
    t.finish(A, 7)
    assert t.take().offsets == {A: 10}
    t.finish(A, 4)  # never started: ignored
    assert t.unfinished() == 0


def test_timers_give_back_their_slots_and_keep_due_order_through_a_drain() -> None:
    """Thousands held then mostly released: the slots left are renumbered, and what
    remains still comes out by due time with its offset and bytes."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    timers = Timers()
    n = 10_000
    for offset in range(n):
        due = t0 + timedelta(milliseconds=(offset * 7919) % n)  # a scrambled order
        timers.add(A if offset % 2 else B, offset, due, b"%d" % offset)
    released = timers.pop_due(t0 + timedelta(milliseconds=n - 101), limit=n)
    assert len(released) == n - 100
    assert len(timers._raw) == 100  # renumbered: no slot kept for what left (internal)
    left = [o for o in range(n) if (o * 7919) % n >= n - 100]
    assert timers.size == sum(timers.cost(b"%d" % o) for o in left)
    rest = timers.pop_due(t0 + timedelta(milliseconds=n), limit=n)
    dues = [(o * 7919) % n for _, o, _ in rest]
    assert dues == list(range(n - 100, n))  # by due time
    assert sorted(o for _, o, _ in rest) == left
    assert all(raw == b"%d" % o and tp == (A if o % 2 else B) for tp, o, raw in rest)
    assert len(timers) == 0
    assert timers.size == 0


def test_timers_release_records_due_together_in_the_order_they_were_read() -> None:
    """Even after some have left and more were read: a partition's records due at the
    same time leave in offset order, so what is finished stays a committable prefix
    (a rebalance then commits it instead of leaving it to be posted again)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    timers = Timers()
    for offset in range(10):
        timers.add(A, offset, t0, b"x")
        timers.add(B, offset, t0, b"y")
    first = timers.pop_due(t0, limit=5)
    for offset in range(10, 14):
        timers.add(A, offset, t0, b"x")
    rest = timers.pop_due(t0, limit=100)
    for tp in (A, B):
        offsets = [o for p, o, _ in first + rest if p == tp]
        assert offsets == sorted(offsets), f"{tp}: {offsets}"
    assert len(first) + len(rest) == 24
