"""logs.Tally: per-trade lines at DEBUG, their counts at INFO once a period."""

from __future__ import annotations

import logging

import pytest

from trace_stream.telemetry.logs import Tally


def test_counts_are_said_once_a_period_and_only_when_something_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    tally = Tally(logging.getLogger("trace_stream.test"), "posts", every=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO)
    tally.add("posted", 3)
    tally.add("retried")
    now[0] = 59.9
    tally.report(adapter="webhook")
    assert not caplog.records, "said before the period ended"
    now[0] = 60.0
    tally.report(adapter="webhook")
    (line,) = caplog.records
    assert line.getMessage() == "posts" and line.levelno == logging.INFO
    assert (line.adapter, line.posted, line.retried) == ("webhook", 3, 1)  # type: ignore[attr-defined]
    now[0] = 200.0
    tally.report(adapter="webhook")
    assert len(caplog.records) == 1, "a line for a period with nothing in it"
    tally.add("posted")
    now[0] = 259.0
    tally.report(adapter="webhook")
    assert len(caplog.records) == 1, "the empty period restarted the clock"
    now[0] = 260.0
    tally.report(adapter="webhook")
    assert caplog.records[-1].posted == 1  # type: ignore[attr-defined]
