"""One way to back off, for every retry loop of the package: tenacity's `Retrying`,
pausing `first` seconds, doubling up to `cap` (equal to `first`: a steady pause),
until a deadline if there is one, each pause cut short when `stop` is set."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from trace_stream.core.errors import TraceStreamError

Said = Callable[[int, BaseException, float | None], None]
"""Told after each failure `retry_on` accepts: the attempt's number, the failure, and
the pause in seconds before the next attempt, or None when the deadline has come and
the failure is raised."""


class Stopped(TraceStreamError):
    """`stop` was set during a pause: the caller ends quietly, nothing more failed."""


def backoff(
    *,
    first: float,
    cap: float,
    retry_on: Callable[[BaseException], bool],
    stop: threading.Event | None = None,
    deadline: float | None = None,
    said: Said | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Retrying:
    """Calling the result with a function calls it until it returns, and raises:

    - a failure `retry_on` refuses, at once;
    - the last failure once an attempt fails at or past `deadline` (a `clock()` time;
      the pause before it is cut short to end at the deadline, so one attempt is made
      there);
    - Stopped as soon as `stop` is set during a pause. A set `stop` does not prevent
      the first attempt: a caller that must not begin once stopped checks it first.
    """
    stop = stop or threading.Event()  # none given: nothing cuts the pauses short
    doubling = wait_exponential(multiplier=first, max=cap)

    def pause(state: RetryCallState) -> float:
        left = math.inf if deadline is None else deadline - clock()
        return max(0.0, min(doubling(state), left))

    def past_deadline(state: RetryCallState) -> bool:
        return deadline is not None and clock() >= deadline

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped("stopped while waiting to try again")

    def tell(state: RetryCallState) -> None:  # only failures are retried
        failure = state.outcome.exception() if state.outcome else None
        if said is not None and failure is not None:
            said(state.attempt_number, failure, None if past_deadline(state) else pause(state))

    return Retrying(
        sleep=sleep,
        wait=pause,
        stop=past_deadline,
        retry=retry_if_exception(retry_on),
        after=tell,
        reraise=True,
    )
