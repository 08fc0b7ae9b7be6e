"""core.backoff, the one retry loop: its pauses, its deadline, and `stop` cutting a
pause short. A fake clock advances only by the pauses, so nothing here sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.support import wait_for
from trace_stream.core.backoff import Stopped, backoff


class Down(Exception):
    pass


class Clock(threading.Event):
    """A `stop` event whose waits take no time: each advances the clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        self.pauses.append(timeout or 0.0)
        self.now += timeout or 0.0
        return False


def failing(
    times: int, clock: Clock, error: Exception | None = None
) -> tuple[list[float], Callable[[], str]]:
    """The clock times a call was made at, and the call: it fails `times` times, then answers."""
    at: list[float] = []

    def call() -> str:
        at.append(clock.now)
        if len(at) <= times:
            raise error or Down()
        return "answer"

    return at, call


def is_down(exc: BaseException) -> bool:
    return isinstance(exc, Down)


def test_pauses_double_up_to_the_cap_and_each_is_told() -> None:
    clock = Clock()
    said: list[tuple[int, str, float | None]] = []
    retrying = backoff(
        first=1.0,
        cap=10.0,
        retry_on=is_down,
        stop=clock,
        clock=clock,
        said=lambda n, exc, pause: said.append((n, type(exc).__name__, pause)),
    )
    at, call = failing(6, clock)
    assert retrying(call) == "answer"
    assert clock.pauses == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert at == [0.0, 1.0, 3.0, 7.0, 15.0, 25.0, 35.0]
    assert said == [(n, "Down", p) for n, p in zip(range(1, 7), clock.pauses, strict=True)]
    assert retrying.statistics["attempt_number"] == 7


def test_equal_first_and_cap_pause_steadily() -> None:
    clock = Clock()
    _, call = failing(3, clock)
    backoff(first=2.0, cap=2.0, retry_on=is_down, stop=clock, clock=clock)(call)
    assert clock.pauses == [2.0, 2.0, 2.0]


def test_a_failure_not_to_retry_is_raised_at_once() -> None:
    clock = Clock()
    at, call = failing(5, clock, ValueError("fatal"))
    with pytest.raises(ValueError, match="fatal"):
        backoff(first=1.0, cap=10.0, retry_on=is_down, stop=clock, clock=clock)(call)
    assert at == [0.0] and clock.pauses == []


def test_the_last_pause_ends_at_the_deadline_where_the_last_attempt_fails() -> None:
    clock = Clock()
    at, call = failing(100, clock)
    said: list[float | None] = []
    retrying = backoff(
        first=1.0,
        cap=10.0,
        retry_on=is_down,
        stop=clock,
        clock=clock,
        deadline=5,
        said=lambda _, __, pause: said.append(pause),
    )
    with pytest.raises(Down):
        retrying(call)
    assert clock.pauses == [1.0, 2.0, 2.0]  # the third cut from 4 to end at the deadline
    assert at == [0.0, 1.0, 3.0, 5.0]
    assert said == [1.0, 2.0, 2.0, None], "every failed attempt is told, the last as such"


def test_an_answer_at_the_deadline_is_taken() -> None:
    clock = Clock()
    at, call = failing(3, clock)
    assert backoff(first=1.0, cap=10.0, retry_on=is_down, stop=clock, clock=clock, deadline=5)(call)
    assert at[-1] == 5.0


def test_stop_set_before_a_pause_ends_it_at_once() -> None:
    clock = Clock()

    def call() -> None:
        clock.set()  # as a signal handler would, while the attempt runs
        raise Down()

    with pytest.raises(Stopped):
        backoff(first=1.0, cap=10.0, retry_on=is_down, stop=clock, clock=clock)(call)
    assert clock.now == 0.0


def test_stop_cuts_a_long_pause_short() -> None:
    stop = threading.Event()
    attempts: list[int] = []
    outcome: list[BaseException] = []

    def call() -> None:
        attempts.append(1)
        raise Down()

    def run() -> None:
        try:
            backoff(first=600.0, cap=600.0, retry_on=is_down, stop=stop)(call)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: attempts, timeout=5, what="the first attempt")
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "the pause was not cut short"
    assert len(attempts) == 1 and isinstance(outcome[0], Stopped)


def test_without_a_stop_event_the_pauses_run_out() -> None:
    at: list[int] = []

    def call() -> str:
        at.append(1)
        if len(at) < 3:
            raise Down()
        return "answer"

    assert backoff(first=0.001, cap=0.002, retry_on=is_down)(call) == "answer"
