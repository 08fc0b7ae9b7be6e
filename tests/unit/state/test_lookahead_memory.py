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


@pytest.mark.parametrize("kind", [Timers, InOrder])
def test_entry_bytes_covers_a_held_record_and_is_not_far_above_it(kind: type) -> None:
    ahead = kind()
    measured, charged = _per_record(ahead), ahead.ENTRY_BYTES
    assert measured <= charged, f"{measured:.0f} bytes per record: raise ENTRY_BYTES"
    assert measured >= 0.8 * charged, f"{measured:.0f} bytes per record: lower ENTRY_BYTES"
