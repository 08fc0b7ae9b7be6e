"""Metrics, health endpoints, logs and the backlog probe of a real running service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devenv.broker import free_port
from devenv.tracker import Reply, Tracker
from tests.support import (
    Process,
    canaries,
    env_for,
    make_settings,
    publish,
    running,
    trade_event,
    wait_for,
)
from trace_stream.codec.wire import delivery_record
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer, Reader
from trace_stream.pipeline.redact import redact
from trace_stream.service import app
from trace_stream.stages.backlog import BacklogProbe
from trace_stream.telemetry.metrics import Metrics

TOKEN = "tok-canary-Zx81"
CACHE_BIN = Path(os.environ.get("TRACE_STREAM_CACHE", Path.home() / ".cache/trace-stream")) / "bin"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_trade(path: str, body: bytes) -> Reply:
    trade_id = json.loads(body)["trade_id"]
    return Reply(401) if trade_id == "T-dead" else Reply(200)


def test_metrics_health_and_logs_of_a_run(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    tracker.decide = by_trade
    tracker.respond(Reply(503))  # the very first post fails once and is retried
    port = free_port()
    settings = make_settings(
        kafka_bootstrap, trace_delay_minutes=0, trace_retry_schedule="300ms,600ms,1s,1s,1s"
    )
    env = env_for(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces",
        WEBHOOK_AUTH_TOKEN=TOKEN,
        METRICS_PORT=str(port),
        LOG_LEVEL="DEBUG",
        TRACE_BACKLOG_REFRESH_SECONDS="0.5",
    )
    trades = [trade_event(f"T-ok-{i}") for i in range(4)] + [trade_event("T-dead")]
    publish(settings, *trades, trade_event("T-private", tracing_opt_in=False), b"\x07not-avro")
    log_path = tmp_path / "service.log"
    proc = Process(env, log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/readyz") == 200, timeout=30, what="readiness")
        assert _get(f"{base}/healthz") == 200

        def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            got = samples(httpx.get(f"{base}/metrics").text)
            done = got.get(("trust_traces_pushed_total", (("adapter", "webhook"),)), 0) == 4
            dead = got.get(
                (
                    "trust_trace_dead_lettered_total",
                    (("adapter", "webhook"), ("reason", "permanent_failure")),
                ),
                0,
            )
            return got if done and dead == 1 else {}

        got = wait_for(settled, timeout=30, what="4 pushed and 1 dead-lettered in /metrics")
        exposition = httpx.get(f"{base}/metrics").text
        assert proc.terminate() == 0
    finally:
        proc.close()
    w = (("adapter", "webhook"),)
    assert got[("trust_trace_fail_total", (*w, ("reason", "server_error")))] == 1
    assert got[("trust_trace_fail_total", (*w, ("reason", "auth")))] == 1
    assert got[("trust_trace_events_total", (("outcome", "scheduled"),))] == 5
    assert got[("trust_trace_events_total", (("outcome", "skipped_not_opted_in"),))] == 1
    assert (
        got[("trust_trace_dead_lettered_total", (("adapter", "none"), ("reason", "undecodable")))]
        == 1
    )
    assert got[("trust_trace_alerts_total", (*w, ("reason", "permanent_failure")))] == 1
    assert got[("trust_trace_post_duration_seconds_count", w)] == 6
    assert got[("trust_trace_post_lateness_seconds_count", w)] == 4
    assert (
        "trade_id" not in exposition and "T-ok" not in exposition and tracker.url not in exposition
    )
    _promtool_check(exposition, tmp_path)

    lines = log_path.read_text().splitlines()
    assert lines, "the service logged nothing"
    records = [json.loads(line) for line in lines]  # every line is structured JSON
    assert any(r["msg"] == "delivery abandoned" and r["trade_id"] == "T-dead" for r in records)
    text = log_path.read_text()
    forbidden = [TOKEN] + [
        v for t in [*trades, trade_event("T-private")] for v in canaries(t["trade_id"]).values()
    ]
    assert [f for f in forbidden if f in text] == []


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0


def _promtool_check(exposition: str, tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or shutil.which("promtool", path=str(CACHE_BIN))
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: run `make tools`")
        pytest.skip("promtool not installed (make tools)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_due_lag_rises_while_stopped_and_falls_after_resume(
    kafka_bootstrap, tracker: Tracker, monkeypatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    settings = make_settings(kafka_bootstrap)
    topics = layout(settings)
    now = datetime.now(UTC)
    producer = Producer(settings.kafka_config())
    for i in range(3):
        delivery = TraceDelivery(
            trace=redact(trade_event(f"T-{i}")),
            adapters=("webhook",),
            due_at=now - timedelta(seconds=30),
            origin=Origin(topic=settings.trace_input_topic, partition=0, offset=i),
        )
        producer.produce(delivery_record(topics.delay, delivery))
    producer.flush()
    metrics = Metrics(__import__("prometheus_client").CollectorRegistry())
    group = f"{settings.trace_group_id}.deliver.webhook"
    probe = BacklogProbe(
        reader=Reader(settings.kafka_config()),
        groups={"webhook": group},
        topics=topics,
        metrics=metrics,
        clock=lambda: now,
    )
    probe.refresh()  # nothing is running: three due deliveries wait
    assert metrics.due_lag.labels("webhook")._value.get() == pytest.approx(30, abs=0.01)
    assert metrics.queue_pending.labels("webhook", topics.delay)._value.get() >= 3
    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 3, what="the waiting deliveries")

        def drained() -> bool:
            probe.refresh()
            return bool(metrics.due_lag.labels("webhook")._value.get() == 0)

        wait_for(drained, timeout=20, what="due lag back to 0")
    probe.refresh()
    assert (
        metrics.queue_pending.labels("webhook", topics.delay)._value.get() <= 2
    )  # commit markers only


def test_input_lag_counts_what_stage_1_has_not_committed(
    kafka_bootstrap, tracker: Tracker, monkeypatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    settings = make_settings(kafka_bootstrap)
    topic = settings.trace_input_topic
    publish(settings, *(trade_event(f"T-{i}") for i in range(3)), partition=0)
    later = datetime.now(UTC) + timedelta(seconds=60)
    metrics = Metrics(__import__("prometheus_client").CollectorRegistry())
    probe = BacklogProbe(
        reader=Reader(settings.kafka_config()),
        groups={},
        topics=layout(settings),
        metrics=metrics,
        clock=lambda: later,
        input_group=settings.trace_group_id,
    )

    def unread(partition: int) -> tuple[float, float]:
        lag = metrics.input_lag.labels(topic, str(partition))._value.get()
        age = metrics.input_age.labels(topic, str(partition))._value.get()
        return lag, age

    probe.refresh()  # stage 1 is not running: its group has committed nothing
    lag, age = unread(0)
    assert lag == 3 and 60 <= age < 90
    assert unread(1) == (0, 0)
    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 3, what="the trades posted")

        def caught_up() -> bool:
            probe.refresh()
            return unread(0) == (0, 0)

        wait_for(caught_up, timeout=20, what="input lag and age back to 0")


@pytest.mark.parametrize("adapter", ["webhook", "file"])
def test_due_lag_sees_due_deliveries_waiting_behind_one_not_yet_due(
    kafka_bootstrap, tracker: Tracker, monkeypatch, tmp_path: Path, adapter: str
) -> None:
    """webhook: a buffer of one delivery, filled by the one not yet due, leaves the due
    ones behind it unread in Kafka (the probe reads them). file: batches keep offset
    order, so the due ones wait in memory behind it (the deliverer reports them)."""
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    monkeypatch.setenv("FILE_EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv("FILE_EXPORT_BATCH_MAX_AGE_SECONDS", "0.2")
    tight: dict[str, Any] = (
        {"trace_max_buffered": 1, "trace_max_in_flight": 1} if adapter == "webhook" else {}
    )
    settings = make_settings(
        kafka_bootstrap,
        trace_topic_partitions=1,
        trace_enabled_adapters=adapter,
        trace_backlog_refresh_seconds=0.5,
        **tight,
    )
    topics = layout(settings)
    producer = Producer(settings.kafka_config())

    def lag(service: app.Service) -> float:
        return float(service.metrics.due_lag.labels(adapter)._value.get())

    def delivered() -> set[str]:
        if adapter == "webhook":
            return {r.json()["trade_id"] for r in tracker.requests(ok=True)}
        return {
            json.loads(line)["trade_id"]
            for f in (tmp_path / "export").rglob("*.jsonl")
            for line in f.read_text().splitlines()
        }

    with running(settings) as service:
        wait_for(lambda: service.health.ready()[0], what="the deliverer to join")
        now = datetime.now(UTC)
        head_due = now + timedelta(seconds=10)
        for i, due in enumerate([head_due] + [now - timedelta(seconds=30)] * 3):
            delivery = TraceDelivery(
                trace=redact(trade_event(f"T-{i}")),
                adapters=(adapter,),
                due_at=due,
                origin=Origin(topic=settings.trace_input_topic, partition=0, offset=i),
            )
            producer.produce(delivery_record(topics.delay, delivery))
        producer.flush()
        rose = wait_for(lambda: lag(service) >= 30, timeout=8, what="the due lag to rise")
        assert datetime.now(UTC) < head_due and rose
        assert delivered() == set(), "nothing may go out before the head is due"
        wait_for(lambda: len(delivered()) == 4, timeout=20, what="all four deliveries")
        assert datetime.now(UTC) >= head_due
        wait_for(lambda: lag(service) == 0, timeout=10, what="the due lag back to 0")
