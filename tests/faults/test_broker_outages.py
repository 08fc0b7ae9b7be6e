"""Broker restarts in the middle of a stream: the service never hangs, rides out short
outages in process, exits cleanly on long ones (its supervisor restarts it), and
loses nothing, posts nothing early, and repeats a post only with the same key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devenv.broker import LocalKafka
from devenv.tracker import Tracker
from tests.faults.harness import Stream, Supervisor, figures, settled
from tests.support import env_for, make_settings, wait_for

SHUTDOWN = 5.0


@pytest.mark.parametrize("down", [5, 12, 30, 120])
def test_broker_outage_mid_stream(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path, down: float
) -> None:
    settings = make_settings(
        fault_broker.bootstrap,
        trace_delay_minutes=0.05,  # 3 s
        trace_retry_schedule="200ms,400ms,600ms,800ms,1s",
        trace_shutdown_timeout_seconds=SHUTDOWN,
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    service = Supervisor(env, tmp_path / "service.log")
    stream = Stream(settings, count=1500, rate=100).start()
    try:
        wait_for(lambda: len(tracker.requests(ok=True)) >= 100, timeout=60, what="posts flowing")
        fault_broker.halt()
        halted = time.monotonic()
        while time.monotonic() < halted + down:  # the outage itself: nothing to poll for
            assert service.restarts < 5, "restarting in a loop"
            time.sleep(0.5)
        fault_broker.resume()
        up = time.time()
        wait_for(lambda: settled(stream, tracker), timeout=180, what="every trade posted")
        assert service.alive(), "the service is down after the outage"
    finally:
        code, took = service.stop(timeout=SHUTDOWN + 20)
        fault_broker.resume()
    result = figures(stream, tracker, service.restarts, broker_up=up)
    print(f"\nbroker down {down} s: {result}; SIGTERM exit {code} in {took:.1f} s")
    assert result.sound(), str(result)
    assert result.delivered == result.sent, str(result)
    assert code == 0 and took < SHUTDOWN + 10, f"SIGTERM: exit {code} after {took:.1f} s"
