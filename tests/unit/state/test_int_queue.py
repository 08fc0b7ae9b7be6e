"""`IntQueue`: first in, first out, 8 bytes a value, its dead front reclaimed."""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trace_stream.state.int_queue import IntQueue


@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.none()), max_size=3000))
@settings(max_examples=200, deadline=None)
def test_behaves_as_a_deque_of_ints_whatever_the_appends_and_pops(steps: list[int | None]) -> None:
    q, model = IntQueue(), deque[int]()
    for step in steps:
        if step is None:
            if model:
                assert q.popleft() == model.popleft()
            else:
                with pytest.raises(IndexError):
                    q.popleft()
        else:
            q.append(step)
            model.append(step)
        assert len(q) == len(model)
        assert list(q) == list(model)
        if model:
            assert (q.first(), q.last(), q.lowest()) == (model[0], model[-1], min(model))


def test_finds_and_inserts_in_an_ascending_queue_past_a_popped_front() -> None:
    q = IntQueue()
    for value in range(0, 5000, 2):
        q.append(value)
    for _ in range(1500):
        q.popleft()  # past the point where the dead front is dropped
    assert q.first() == 3000
    assert q.index_sorted(3000) == 0
    assert q.index_sorted(3002) == 1
    assert q.index_sorted(2998) == -1  # popped
    assert q.index_sorted(3001) == -1  # never there
    q.insert_sorted(3001)
    assert q.index_sorted(3001) == 1
    assert list(q)[:4] == [3000, 3001, 3002, 3004]


def test_a_value_costs_8_bytes_and_the_popped_front_is_given_back() -> None:
    n = 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        q = IntQueue()
        for value in range(10**12, 10**12 + n):
            q.append(value)
        full = tracemalloc.get_traced_memory()[0] - before
        for _ in range(n - 10):
            q.popleft()
        drained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert full / n <= 9.5, f"{full / n:.1f} bytes a value"
    assert drained <= full / 10, f"{drained} bytes held for 10 values"
    assert list(q) == list(range(10**12 + n - 10, 10**12 + n))
