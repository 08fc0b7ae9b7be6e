"""Alert posts to a real local endpoint, throttled per adapter and reason."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry

from devenv.tracker import Tracker
from tests.support import trade_event, wait_for
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.pipeline.redact import redact
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.metrics import Metrics


def letter(
    trade_id: str, reason: str = "permanent_failure", adapter: str = "webhook"
) -> DeadLetter:
    now = datetime.now(UTC)
    origin = Origin(topic="trade.closed", partition=0, offset=1)
    delivery = TraceDelivery(
        trace=redact(trade_event(trade_id)),
        adapters=(adapter,),
        attempt=1,
        due_at=now,
        origin=origin,
    )
    return DeadLetter(
        reason=reason,
        detail="auth: HTTP 401",
        adapter=adapter,
        dead_at=now,
        origin=origin,
        delivery=delivery,
    )


def test_a_storm_of_the_same_failure_posts_once_per_interval(tracker: Tracker) -> None:
    metrics = Metrics(CollectorRegistry())
    runner = AsyncRunner()
    http = httpx.AsyncClient()
    now = [1000.0]
    alerter = Alerter(
        metrics, runner, http, f"{tracker.url}/hook", min_interval=60, clock=lambda: now[0]
    )
    try:
        for i in range(50):
            alerter.abandoned(letter(f"T-{i}"))
        alerter.abandoned(letter("T-other", reason="retries_exhausted"))
        wait_for(lambda: len(tracker.requests()) == 2, what="two alert posts")
        now[0] += 61
        alerter.abandoned(letter("T-late"))
        wait_for(lambda: len(tracker.requests()) == 3, what="the next post after the interval")
    finally:
        runner.run(http.aclose())
        runner.close()
    texts = [r.json()["text"] for r in tracker.requests()]
    first_two = sorted(texts[:2])  # posted concurrently: either order
    assert "T-0 " in first_two[0]
    assert "T-other" in first_two[1]
    assert "T-late" in texts[2]
    assert "49 more like it" in texts[2]
    assert metrics.alerts.labels("webhook", "permanent_failure")._value.get() == 51
    for r in tracker.requests():
        assert "canary" not in r.body.decode()


def test_each_abandoned_delivery_is_a_warning_and_each_alert_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A storm of 200 dead letters for one cause: 200 WARNING lines, one ERROR line
    per alert interval (the next one counting the rest), even without a webhook."""
    metrics = Metrics(CollectorRegistry())
    now = [1000.0]
    runner, http = AsyncRunner(), httpx.AsyncClient()
    alerter = Alerter(metrics, runner, http, None, 60, lambda: now[0])
    caplog.set_level(logging.INFO, logger="trace_stream.telemetry.alerts")
    try:
        for i in range(200):
            alerter.abandoned(letter(f"T-{i}"))
        now[0] += 61
        alerter.abandoned(letter("T-late"))
    finally:
        runner.run(http.aclose())
        runner.close()
    records = [r for r in caplog.records if r.name == "trace_stream.telemetry.alerts"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    errors = [r for r in records if r.levelno == logging.ERROR]
    assert len(warnings) == 201
    assert [(e.trade_id, e.more_since_last) for e in errors] == [("T-0", 0), ("T-late", 199)]  # type: ignore[attr-defined]
