"""Every Prometheus metric, created against an injectable registry.

Labels are drawn from small fixed sets (adapter names, FailReason, dead-letter
reasons); never a trade id, user data or a URL.
"""

from __future__ import annotations

import platform
import threading
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from trace_stream.kafka import librdkafka_version


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pushed = Counter(
            "trust_traces_pushed",
            "Traces a tracker accepted.",
            ["adapter"],
            registry=registry,
        )
        self.failed = Counter(
            "trust_trace_fail",
            "Failed delivery attempts, by reason.",
            ["adapter", "reason"],
            registry=registry,
        )
        self.post_duration = Histogram(
            "trust_trace_post_duration_seconds",
            "Time one delivery attempt took, success or not.",
            ["adapter"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.lateness = Histogram(
            "trust_trace_post_lateness_seconds",
            "How long after its due time a trace was accepted by a tracker.",
            ["adapter"],
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 7200),
        )
        self.queue_pending = Gauge(
            "trust_trace_queue_pending",
            "Deliveries waiting in a delay or retry topic for an adapter's consumer group "
            "(end offset minus committed offset).",
            ["adapter", "topic"],
            registry=registry,
        )
        self.due_lag = Gauge(
            "trust_trace_due_lag_seconds",
            "How far past its due time the oldest delivery not yet posted is (0 when none "
            "is overdue): read, unread, or behind a record that is not due.",
            ["adapter"],
            registry=registry,
        )
        self._lag_parts: dict[tuple[str, str], float] = {}
        self._lag_lock = threading.Lock()
        self.buffered = Gauge(
            "trust_trace_buffered",
            "Deliveries an adapter's deliverer holds in memory, read ahead of its committed "
            "position (bounded by TRACE_MAX_BUFFERED).",
            ["adapter"],
            registry=registry,
        )
        self.buffered_bytes = Gauge(
            "trust_trace_buffered_bytes",
            "Bytes the deliveries an adapter's deliverer holds until due take, as accounted "
            "against its look-ahead budget; reading pauses at the budget.",
            ["adapter"],
            registry=registry,
        )
        self.buffer_budget_bytes = Gauge(
            "trust_trace_buffer_budget_bytes",
            "An adapter's look-ahead budget: its share of TRACE_LOOKAHEAD_MEMORY_MIB.",
            ["adapter"],
            registry=registry,
        )
        self.events = Counter(
            "trust_trace_events",
            "trade.closed events read, by what became of them.",
            ["outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "trust_trace_dead_lettered",
            "Records written to the dead-letter topic.",
            ["adapter", "reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "trust_trace_alerts",
            "Alerts raised for abandoned deliveries.",
            ["adapter", "reason"],
            registry=registry,
        )
        self.adapter_paused = Gauge(
            "trust_trace_adapter_paused",
            "1 while an adapter's circuit breaker holds its deliveries after repeated "
            "permanent failures.",
            ["adapter"],
            registry=registry,
        )
        self.waiting_for_limit = Gauge(
            "trust_trace_waiting_for_limit",
            "1 while deliveries that are due wait for the adapter's own limit "
            "(TRACE_RATE_LIMITS): limit is rate or daily_quota.",
            ["adapter", "limit"],
            registry=registry,
        )
        self.tracker_paused = Gauge(
            "trust_trace_tracker_paused",
            "1 while a tracker's Retry-After (with a 429 or 5xx) holds every delivery of the "
            "adapter.",
            ["adapter"],
            registry=registry,
        )
        self.adapter_stopped = Gauge(
            "trust_trace_adapter_stopped",
            "1 once a tracker answered 410 Gone: the adapter sends nothing until the service "
            "restarts; its deliveries wait in Kafka.",
            ["adapter"],
            registry=registry,
        )
        self.withdrawn = Counter(
            "trust_trace_withdrawn",
            "Deliveries not posted because the signal's current settings no longer allow "
            "it at send time: consent_withdrawn or adapter_removed.",
            ["adapter", "reason"],
            registry=registry,
        )
        self.signal_settings = Gauge(
            "trust_trace_signal_settings",
            "Signals with an entry in the settings table (TRACE_SIGNAL_SETTINGS_TOPIC).",
            registry=registry,
        )
        self.signal_settings_invalid = Counter(
            "trust_trace_signal_settings_invalid",
            "Settings records that could not be used: unreadable (its signal's trades are "
            "dead-lettered until a valid record follows) or no_key (ignored).",
            ["reason"],
            registry=registry,
        )
        self.alert_failures = Counter(
            "trust_trace_alert_post_failures",
            "Alert webhook posts that failed.",
            registry=registry,
        )

        # What the dashboard and TraceInputStalled read, then the process itself.
        self.in_flight = Gauge(
            "trust_trace_in_flight",
            "Posts to an adapter's tracker started and not yet finished.",
            ["adapter"],
            registry=registry,
        )
        self.input_lag = Gauge(
            "trust_trace_input_lag",
            "Records of the input topic (trade.closed) that stage 1's group has not "
            "committed yet, per partition (end offset minus committed offset).",
            ["topic", "partition"],
            registry=registry,
        )
        self.input_age = Gauge(
            "trust_trace_input_oldest_unread_age_seconds",
            "Age (by its Kafka timestamp) of the oldest input record stage 1's group has "
            "not committed yet, per partition; 0 when none is unread.",
            ["topic", "partition"],
            registry=registry,
        )
        self.stage_ready = Gauge(
            "trust_trace_stage_ready",
            "1 while a stage is ready as /readyz judges it: assigned, reaching Kafka, "
            "its loop coming round.",
            ["stage"],
            registry=registry,
        )
        Gauge(
            "trust_trace_build_info",
            "Always 1: the versions this process runs.",
            ["version", "librdkafka_version", "python_version"],
            registry=registry,
        ).labels(version("trace-stream"), librdkafka_version(), platform.python_version()).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def report_limit(self, adapter: str, waiting_for: str | None) -> None:
        """Which limit due deliveries of `adapter` wait for now, if any."""
        for limit in ("rate", "daily_quota"):
            self.waiting_for_limit.labels(adapter, limit).set(waiting_for == limit)

    def report_due_lag(self, adapter: str, source: str, seconds: float) -> None:
        """One source's view of an adapter's due lag; the gauge shows the largest. The
        deliverer reports what it holds in memory, the backlog probe what it reads from
        Kafka beyond the deliverer's read position."""
        with self._lag_lock:
            self._lag_parts[(adapter, source)] = seconds
            worst = max(v for (a, _), v in self._lag_parts.items() if a == adapter)
            self.due_lag.labels(adapter).set(worst)
