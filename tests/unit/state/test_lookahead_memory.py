"""Each look-ahead's `ENTRY_BYTES`, what the budget charges per held record beyond
its bytes, against the memory the deliverer's bookkeeping really takes for it
(tracemalloc): close enough that the budget is a true bound on memory, never far above it."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from trace_stream.state.lookahead import InOrder, Lookahead, Timers
from trace_stream.state.offsets import OffsetTracker

N = 20_000
RAW = 128  # a webhook delivery's Avro record (bench/scheduling.py's trades)


def _per_record(ahead: Lookahead) -> float:
    """Bytes taken per record held, beyond its length, as the deliverer holds it: its
    bytes, its entry in `ahead`, its unfinished offset in the tracker."""
    tracker = OffsetTracker()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(N):
            tp = ("trace.delay", i % 6)  # a fresh tuple per record, as Message.tp makes
            offset = 1_000_000 + i // 6
            tracker.start(tp, offset)
            ahead.add(tp, offset, t0 + timedelta(milliseconds=i), bytes(RAW))
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(ahead) == N
    assert tracker.unfinished() == N
    return taken / N - RAW


# A timer's charge also covers slots reclaimed later (the test below), so a fresh one
# is held to 0.75 of it; the in-order kind keeps no such slack.
@pytest.mark.parametrize(("kind", "floor"), [(Timers, 0.75), (InOrder, 0.8)])
def test_entry_bytes_covers_a_held_record_and_is_not_far_above_it(kind: type, floor: float) -> None:
    ahead = kind()
    measured, charged = _per_record(ahead), ahead.ENTRY_BYTES
    assert measured <= charged, f"{measured:.0f} bytes per record: raise ENTRY_BYTES"
    assert measured >= floor * charged, f"{measured:.0f} bytes per record: lower ENTRY_BYTES"


def test_timers_entry_bytes_cover_the_slots_left_behind_before_a_renumbering() -> None:
    """The most a timer holds per record: just before the slots are renumbered, one
    slot left behind per record held."""
    tracker, timers = OffsetTracker(), Timers()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2 * N):
            tp = ("trace.delay", i % 6)
            tracker.start(tp, 1_000_000 + i // 6)
            timers.add(tp, 1_000_000 + i // 6, t0 + timedelta(milliseconds=i), bytes(RAW))
        last = t0 + timedelta(milliseconds=N - 2)
        while released := timers.pop_due(last, limit=100):  # committed as the loop does
            for tp, offset, _ in released:
                tracker.finish(tp, offset)
            tracker.take()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    held = len(timers)
    assert held == N + 1  # one short of renumbering
    measured = taken / held - RAW
    assert measured <= Timers.ENTRY_BYTES, f"{measured:.0f} bytes per record held"
