"""Liveness and readiness: what /healthz and /readyz answer, on an injected clock."""

from __future__ import annotations

import threading

import pytest

from trace_stream.kafka import Stuck
from trace_stream.kafka.common import bounded
from trace_stream.telemetry.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_only_when_joined_reaching_kafka_and_progressing() -> None:
    clock = Clock()
    h = Health(["schedule", "deliver.webhook"], stale_after=60, ready_within=15, clock=clock)
    clock.now += 300  # waiting for Kafka at start-up: alive, not ready
    assert h.live() == (True, "starting")
    assert h.ready() == (False, "starting: waiting for Kafka")
    h.started()
    assert h.ready() == (False, "not assigned: deliver.webhook,schedule")
    h.joined("schedule")
    h.joined("deliver.webhook")
    assert h.ready() == (True, "ok")
    h.beat("schedule", reaches_kafka=False)  # e.g. every broker down
    assert h.ready() == (False, "Kafka unreachable: schedule")
    h.beat("schedule")
    clock.now += 16  # both loops blocked, e.g. in a transaction that does not return
    h.beat("schedule")
    assert h.ready() == (False, "not progressing: deliver.webhook")
    assert h.live() == (True, "ok")  # blocked for 16 s is not dead
    clock.now += 45
    h.beat("schedule")
    assert h.live() == (False, "stale: deliver.webhook")
    h.beat("deliver.webhook")
    assert h.ready() == (True, "ok")
    assert h.live() == (True, "ok")


def test_bounded_returns_raises_or_gives_up_in_time() -> None:
    assert bounded(lambda: 42, 1, "answer") == 42
    with pytest.raises(ZeroDivisionError):
        bounded(lambda: 1 // 0, 1, "divide")
    release = threading.Event()
    try:
        with pytest.raises(Stuck, match=r"hang: no answer within 0\.2s"):
            bounded(lambda: release.wait(30), 0.2, "hang")  # a call that ignores its timeout
    finally:
        release.set()


def test_not_ready_once_no_broker_answered_for_three_seconds() -> None:
    """Whatever the stages are blocked in: the Kafka watch's answers alone decide."""
    clock = Clock()
    h = Health(["schedule"], ready_within=15, clock=clock)
    h.watch_kafka(unreachable_after=3)
    h.started()
    h.joined("schedule")
    h.reached()
    clock.now += 2.9
    h.beat("schedule")  # the stage still comes round: it is not what decides here
    assert h.ready() == (True, "ok")
    clock.now += 0.2
    assert h.ready() == (False, "no Kafka broker answered for 3 s")
    h.reached()
    assert h.ready() == (True, "ok")


def test_without_the_watch_silence_alone_is_no_reason() -> None:
    clock = Clock()
    h = Health(["schedule"], clock=clock)
    h.started()
    h.joined("schedule")
    clock.now += 10
    h.beat("schedule")
    assert h.ready() == (True, "ok")


def test_a_stopped_adapter_is_not_ready_and_says_which() -> None:
    h = Health(["deliver.webhook", "deliver.myfxbook"], clock=Clock())
    h.started()
    h.joined("deliver.webhook")
    h.joined("deliver.myfxbook")
    h.stopped("webhook", "the tracker answered HTTP 410 Gone")
    assert h.ready() == (False, "adapter stopped: webhook (the tracker answered HTTP 410 Gone)")
    assert h.live() == (True, "ok"), "alive: a restart is for after the fix, not a cure"


def test_stage_ready_is_each_stage_s_part_of_readiness() -> None:
    clock = Clock()
    h = Health(["schedule", "deliver.webhook"], ready_within=15, clock=clock)
    assert not h.stage_ready("schedule")  # not started
    h.started()
    h.joined("schedule")
    assert (h.stage_ready("schedule"), h.stage_ready("deliver.webhook")) == (True, False)
    h.joined("deliver.webhook")
    h.beat("deliver.webhook", reaches_kafka=False)
    assert not h.stage_ready("deliver.webhook")
    clock.now += 16
    h.beat("deliver.webhook")
    assert (h.stage_ready("schedule"), h.stage_ready("deliver.webhook")) == (False, True)
    assert not h.stage_ready("unknown")
