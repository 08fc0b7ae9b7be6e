"""The Kafka watch: each answer feeds readiness; silence is said once, recovery once."""

from __future__ import annotations

import logging
import threading

import pytest

from tests.support import wait_for
from trace_stream.stages.reach import KafkaWatch
from trace_stream.telemetry.health import Health


class Scripted:
    """A ping that answers as scripted, then as the last entry, counting its asks."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.asked = 0
        self.closed = False

    def __call__(self, timeout: float) -> bool:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def close(self) -> None:
        self.closed = True


class Recorder(Health):
    def __init__(self) -> None:
        super().__init__()
        self.answers = 0

    def reached(self) -> None:
        self.answers += 1
        super().reached()


def test_answers_feed_readiness_and_changes_are_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ping = Scripted(True, False, False, False, True)
    health = Recorder()
    watch = KafkaWatch(lambda: ping, health, every=0.001)
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="trace_stream.stages.reach")
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: ping.asked >= 8, timeout=10, what="the watch asking")
    finally:
        stop.set()
        thread.join(5)
    assert ping.closed
    assert health.answers == ping.asked - 3  # every answer but the three silent asks
    said = [r.getMessage() for r in caplog.records]
    assert said == ["no Kafka broker answers: not ready until one does", "Kafka answers again"]
