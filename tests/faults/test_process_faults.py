"""The service killed at random moments, and replicas joining and leaving, during a
stream: nothing lost, nothing early, repeated posts only with the same key."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from devenv.broker import LocalKafka
from devenv.tracker import Tracker
from tests.faults.harness import Stream, Supervisor, figures, settled
from tests.support import env_for, make_settings, wait_for

FAST = "200ms,400ms,600ms,800ms,1s"


def passed(moment: float) -> Callable[[], bool]:
    return lambda: time.monotonic() >= moment


def restarted(service: Supervisor, times: int) -> Callable[[], bool]:
    return lambda: service.restarts >= times


def test_sigkill_at_five_random_moments(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path
) -> None:
    seed = 5
    rng = random.Random(seed)
    settings = make_settings(
        fault_broker.bootstrap, trace_delay_minutes=0.05, trace_retry_schedule=FAST
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    service = Supervisor(env, tmp_path / "service.log")
    stream = Stream(settings, count=2000, rate=100).start()
    moments = sorted(rng.uniform(2, 20) for _ in range(5))
    started = time.monotonic()
    try:
        for n, at in enumerate(moments, start=1):
            wait_for(passed(started + at), timeout=60, what="the moment")
            wait_for(service.alive, timeout=60, what="the restarted service")
            service.kill()
            wait_for(restarted(service, n), what="the restart")
        wait_for(lambda: settled(stream, tracker), timeout=180, what="every trade posted")
    finally:
        code, took = service.stop(timeout=30)
    result = figures(stream, tracker, service.restarts)
    print(f"\nseed {seed}, SIGKILL at {[round(m, 1) for m in moments]} s: {result}")
    assert result.sound() and result.delivered == result.sent, str(result)
    assert service.restarts == 5
    assert code == 0, f"SIGTERM: exit {code} after {took:.1f} s"


def test_a_replica_joins_then_the_first_leaves(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path
) -> None:
    settings = make_settings(
        fault_broker.bootstrap, trace_delay_minutes=0.05, trace_retry_schedule=FAST
    )
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    first = Supervisor(env, tmp_path / "first.log")
    stream = Stream(settings, count=2000, rate=100).start()
    second = None
    try:
        wait_for(lambda: len(tracker.requests(ok=True)) >= 300, timeout=60, what="posts flowing")
        second = Supervisor({**env, "TRACE_INSTANCE_ID": "second"}, tmp_path / "second.log")
        wait_for(lambda: len(tracker.requests(ok=True)) >= 900, timeout=60, what="both running")
        code, took = first.stop(timeout=30)
        assert code == 0, f"the first replica's SIGTERM: exit {code} after {took:.1f} s"
        wait_for(lambda: settled(stream, tracker), timeout=180, what="every trade posted")
    finally:
        first.stop(timeout=30)
        if second is not None:
            second.stop(timeout=30)
    restarts = first.restarts + (second.restarts if second else 0)
    result = figures(stream, tracker, restarts)
    print(f"\nsecond replica joined, first left: {result}")
    assert result.sound() and result.delivered == result.sent, str(result)
    assert restarts == 0
