"""Broker restarts in the middle of a stream: the service never hangs, rides out short
outages in process, exits cleanly on long ones (its supervisor restarts it), and
loses nothing, posts nothing early, and repeats a post only with the same key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devenv.broker import LocalKafka, free_port
from devenv.tracker import Tracker
from tests.faults.harness import Readiness, Stream, Supervisor, figures, settled
from tests.support import env_for, make_settings, wait_for

SHUTDOWN = 5.0
RECOVERY = 45.0  # TRACE_KAFKA_RECOVERY_SECONDS at its default


# Two outages ridden out in process, one within a transaction's bound
# (TRACE_KAFKA_TIMEOUT_SECONDS, 10 s) and one twice past it, where transactions time
# out and are recovered; and one long enough that the process exits 1 and its
# supervisor restarts it while Kafka is still down: Kafka gone longer than the
# recovery plus a transaction's bound and then some (the recovery shortened to 5 s
# there, so that the outage need not last 75 s).
@pytest.mark.parametrize(
    ("down", "recovery"), [(5, RECOVERY), (20, RECOVERY), (28, 5.0)], ids=["5", "20", "28"]
)
def test_broker_outage_mid_stream(
    fault_broker: LocalKafka, tracker: Tracker, tmp_path: Path, down: float, recovery: float
) -> None:
    settings = make_settings(
        fault_broker.bootstrap,
        trace_delay_minutes=0.05,  # 3 s
        trace_retry_schedule="200ms,400ms,600ms,800ms,1s",
        trace_shutdown_timeout_seconds=SHUTDOWN,
        trace_kafka_recovery_seconds=recovery,
    )
    port = free_port()
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces", METRICS_PORT=str(port))
    service = Supervisor(env, tmp_path / "service.log")
    ready = Readiness(port)
    stream = Stream(settings, count=1500, rate=100).start()
    try:
        wait_for(lambda: len(tracker.requests(ok=True)) >= 100, timeout=60, what="posts flowing")
        fault_broker.halt()
        halted = time.monotonic()
        while time.monotonic() < halted + down:  # the outage itself: nothing to poll for
            assert service.restarts < 5, "restarting in a loop"
            time.sleep(0.5)
        # The broker is down until resume() launches it; resume() returns only once it
        # answers, by when the service may rightly have seen it back and said ready.
        restarting = time.monotonic()
        fault_broker.resume()
        up = time.time()
        wait_for(lambda: settled(stream, tracker), timeout=180, what="every trade posted")
        assert service.alive(), "the service is down after the outage"
        wait_for(lambda: ready.now() == 200, timeout=30, what="/readyz 200 again")
        # Not ready within 5 s of the halt (no broker answered the watch for 3 s),
        # whatever the stages are blocked in, and not ready again until it is back.
        unready = [at - halted for at, status in ready.seen if at >= halted and status != 200]
        during = ready.between(halted + 5, restarting)
    finally:
        ready.close()
        code, took = service.stop(timeout=SHUTDOWN + 20)
        fault_broker.resume()
    result = figures(stream, tracker, service.restarts, broker_up=up)
    first = min(unready, default=None)
    print(
        f"\nbroker down {down} s: {result}; /readyz 503 after {first} s, during it "
        f"{sorted(during)}; SIGTERM exit {code} in {took:.1f} s"
    )
    assert first is not None and first <= 5, f"/readyz 503 only {first} s after the halt"
    assert 200 not in during, "/readyz said ready while the broker was down"
    assert result.sound(), str(result)
    assert result.delivered == result.sent, str(result)
    assert code == 0 and took < SHUTDOWN + 10, f"SIGTERM: exit {code} after {took:.1f} s"
    if down > recovery + 20:
        assert result.restarts >= 1, "a long outage did not end the process"
