"""Start-up without a broker, and signals: one clear line instead of a traceback, and
an exit within the documented bounds whatever the Kafka clients are doing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from devenv.broker import free_port
from devenv.tracker import Reply, Tracker
from tests.support import ROOT, env_for, make_settings, publish, trade_event, wait_for


def _service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trace_stream.cli", "run"],
            env={**env, "LOG_FORMAT": "text"},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def _nowhere(**extra: str) -> dict[str, str]:
    """The environment of a service whose broker does not exist."""
    settings = make_settings(f"127.0.0.1:{free_port()}", create_topics=False)
    return env_for(settings, WEBHOOK_ENDPOINT="http://127.0.0.1:9/x", **extra)


def test_start_up_waits_for_kafka_then_exits_1_with_one_line(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    proc = _service(_nowhere(TRACE_STARTUP_TIMEOUT_SECONDS="4"), log)
    try:
        code = proc.wait(30)
    finally:
        proc.kill()
    lines = log.read_text().splitlines()
    waiting = [line for line in lines if "waiting for Kafka" in line]
    print(f"\nexit {code}; {len(waiting)} 'waiting for Kafka' lines; last: {lines[-1]}")
    assert code == 1
    assert waiting, "each attempt says so"
    assert lines[-1].startswith("trace-stream: no Kafka broker at 127.0.0.1:")
    assert "check KAFKA_BOOTSTRAP_SERVERS" in lines[-1]
    assert not [line for line in lines if "Traceback" in line]


def test_sigterm_while_waiting_for_kafka_stops_at_once(tmp_path: Path) -> None:
    proc = _service(_nowhere(), tmp_path / "service.log")
    try:
        wait_for(lambda: "waiting for Kafka" in (tmp_path / "service.log").read_text())
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - started
    finally:
        proc.kill()
    print(f"\nSIGTERM while waiting for Kafka: exit {code} in {took:.1f} s")
    assert code == 0 and took < 10


def test_a_second_signal_ends_the_process_at_once(
    kafka_bootstrap: str, tracker: Tracker, tmp_path: Path
) -> None:
    tracker.respond(Reply(200, delay=30))  # a post that holds the drain
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    env = env_for(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces",
        WEBHOOK_TIMEOUT_SECONDS="60",
        TRACE_SHUTDOWN_TIMEOUT_SECONDS="30",
    )
    publish(settings, trade_event("T-slow"))
    proc = _service(env, tmp_path / "service.log")
    try:
        wait_for(tracker.requests, what="the slow post")
        proc.send_signal(signal.SIGTERM)  # drains: would wait up to 30 s for the post
        wait_for(lambda: "stopping" in (tmp_path / "service.log").read_text())
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        took = time.monotonic() - started
    finally:
        proc.kill()
    print(f"\nsecond SIGTERM: exit {code} in {took:.2f} s")
    assert code == 128 + signal.SIGTERM and took < 2
