"""The process-wide series every registry gets: build info and the standard collectors."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import CollectorRegistry

from trace_stream.kafka import librdkafka_version
from trace_stream.telemetry.metrics import Metrics


def test_build_info_and_process_collectors_are_on_the_service_registry() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    info = {
        "version": version("trace-stream"),
        "librdkafka_version": librdkafka_version(),
    }
    [build] = [
        s for m in registry.collect() for s in m.samples if s.name == "trust_trace_build_info"
    ]
    assert build.value == 1 and info.items() <= build.labels.items()
    names = {s.name for m in registry.collect() for s in m.samples}
    assert {"process_cpu_seconds_total", "python_info", "python_gc_collections_total"} <= names
