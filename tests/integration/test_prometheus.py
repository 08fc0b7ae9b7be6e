"""The chart's alert rules and the dashboard's queries, proven against a real Prometheus
scraping a real `trace-stream run` on the real broker.

Prometheus (Debian's package, from devenv/tools/install.sh) loads the rule file that
`helm template` renders, with shorter `for:` and thresholds set through the chart's own
values, scrapes the service every second and evaluates every second. One scenario, in
phases, each asserting the alerts Prometheus reports (/api/v1/alerts):

  normal flow                         no alert fires
  tracker answers 503 to every post   TraceDeliveryAbandoned (retries exhausted)
  tracker answers 401 to every post   TraceAdapterPaused (the circuit breaker opens)
  stage 1 cannot write its output     TraceInputStalled, while trades keep arriving

Stage 1 is stopped by a real fault, not a hook: the delay topic's max.message.bytes is
lowered below the size of a delivery record, as a wrong topic change would, so the
broker refuses every record stage 1 writes there (MSG_SIZE_TOO_LARGE); each transaction
fails and is aborted, and stage 1 rewinds and tries again without end, its input
piling up. Stage 2 does not write to the delay topic and goes on. (min.insync.replicas
above the replication factor, the other obvious way, does not refuse transactional
writes on the single KRaft broker of these tests.)

Throughout, every dashboard query is run (/api/v1/query) with the dashboard's variables
filled in; each must return series at some point, carrying every label its legend
names, so a misspelt metric or label fails the test.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import admin as kafka_admin

from devenv.broker import free_port
from devenv.tracker import Reply, Tracker
from tests.chart import dashboard
from tests.chart.test_chart import tool
from tests.faults.harness import Stream
from tests.support import (
    Process,
    create_signal_settings_topic,
    env_for,
    make_settings,
    publish,
    publish_signal,
    trade_event,
    wait_for,
)
from trace_stream.core.topics import layout
from trace_stream.settings import Settings

pytestmark = pytest.mark.kafka

CHART = Path(__file__).resolve().parents[2] / "charts" / "trace-stream"
NAMESPACE = "default"  # what `helm template` renders as the release's namespace
JOB = "ts-trace-stream"  # the fullname: the job label the chart's rules select
# The chart's own rules, with times a test can wait for.
SHORT = (
    "prometheusRule.enabled=true",
    "prometheusRule.rules.adapterPaused.for=2s",
    "prometheusRule.rules.inputStalled.thresholdSeconds=5",
    "prometheusRule.rules.inputStalled.for=2s",
)


def chart_rules(path: Path) -> Path:
    """The PrometheusRule's spec, which is a Prometheus rule file."""
    args = ["template", "ts", str(CHART), "--values", str(CHART / "ci" / "default-values.yaml")]
    for value in SHORT:
        args += ["--set", value]
    rendered = subprocess.run(
        [tool("helm"), *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    [rule] = [o for o in yaml.safe_load_all(rendered.stdout) if o and o["kind"] == "PrometheusRule"]
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path


class Prometheus:
    """A Prometheus server on loopback scraping one target; queried over its HTTP API."""

    def __init__(self, target_port: int, rules: Path, tmp: Path) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{target_port}"],
                            # What a ServiceMonitor's scrape adds in a cluster.
                            "labels": {"namespace": NAMESPACE, "pod": f"{JOB}-0"},
                        }
                    ],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=30, what="Prometheus to be ready")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _get(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}{path}", params=params, timeout=5)
        body = reply.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self._get("/api/v1/alerts")["alerts"] if a["state"] == state]

    def firing(self, name: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alerts()
            if a["labels"]["alertname"] == name and labels.items() <= a["labels"].items()
        ]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Panels:
    """Runs every dashboard query; remembers which returned series, and every series
    that lacks a label its legend names."""

    def __init__(self, prometheus: Prometheus) -> None:
        self._prometheus = prometheus
        self.queries = dashboard.queries(dashboard.load())
        self.variables = {
            "namespace": NAMESPACE,
            "job": JOB,
            "adapter": "webhook",
            "__rate_interval": "1m",
        }
        self.answered: set[str] = set()
        self.unlabelled: list[str] = []

    def check(self) -> None:
        for q in self.queries:
            answered, unlabelled = self.run(q)
            if answered:
                self.answered.add(q.filled(self.variables))
            self.unlabelled += unlabelled

    def run(self, q: dashboard.Query) -> tuple[bool, list[str]]:
        """Whether the query returned series, and those lacking a label its legend names."""
        expr = q.filled(self.variables)
        result = self._prometheus.query(expr)
        missing = [q.labels - series["metric"].keys() for series in result]
        return bool(result), [f"{q.panel}: {expr} lacks {sorted(m)}" for m in missing if m]

    def silent(self) -> list[str]:
        return [
            f"{q.panel}: {q.filled(self.variables)}"
            for q in self.queries
            if q.filled(self.variables) not in self.answered
        ]


def wait_checking(panels: Panels, condition: Any, timeout: float, what: str) -> Any:
    """wait_for, running the dashboard's queries on the way (about once a second)."""
    last = [0.0]

    def probe() -> Any:
        if time.monotonic() - last[0] > 1:
            panels.check()
            last[0] = time.monotonic()
        return condition()

    return wait_for(probe, timeout=timeout, what=what)


_ADMINS: list[kafka_admin.AdminClient] = []  # kept: see tests.support.admin_for


def refuse_writes(settings: Settings, topic: str, refuse: bool) -> None:
    """A max.message.bytes no delivery record fits in: the broker refuses every record
    written to `topic`. `refuse=False` removes the override again."""
    if not _ADMINS:
        _ADMINS.append(kafka_admin.AdminClient(settings.kafka_config()))
    op = kafka_admin.AlterConfigOpType  # type: ignore[attr-defined]
    entry = kafka_admin.ConfigEntry(  # type: ignore[attr-defined]
        "max.message.bytes",
        "64" if refuse else None,
        incremental_operation=op.SET if refuse else op.DELETE,
    )
    topic_type = kafka_admin.ConfigResource.Type.TOPIC  # type: ignore[attr-defined]
    resource = kafka_admin.ConfigResource(  # type: ignore[attr-defined]
        topic_type, topic, incremental_configs=[entry]
    )
    for future in _ADMINS[0].incremental_alter_configs([resource]).values():
        future.result(timeout=30)


@pytest.fixture
def prometheus_bin() -> str:
    tool("helm")
    return tool("prometheus")


@pytest.fixture
def service(
    kafka_bootstrap: str, tracker: Tracker, tmp_path: Path, prometheus_bin: str
) -> Iterator[tuple[Settings, Process, int]]:
    port = free_port()
    settings = make_settings(
        kafka_bootstrap,
        trace_retry_schedule="200ms,400ms",
        trace_retry_max_attempts=2,
        trace_breaker_threshold=3,
        trace_kafka_timeout_seconds=3,
        trace_kafka_recovery_seconds=120,
    )
    create_signal_settings_topic(settings)
    publish_signal(settings, "SIG-OFF", enabled=False)  # consent withdrawn for its trades
    env = env_for(
        settings,
        WEBHOOK_ENDPOINT=f"{tracker.url}/traces",
        METRICS_PORT=str(port),
        TRACE_BACKLOG_REFRESH_SECONDS="0.5",
    )
    proc = Process(env, tmp_path / "service.log")
    try:
        yield settings, proc, port
    finally:
        refuse_writes(settings, layout(settings).delay, refuse=False)
        proc.close()


def test_alerts_and_dashboard_against_a_real_prometheus(
    service: tuple[Settings, Process, int], tracker: Tracker, tmp_path: Path
) -> None:
    settings, proc, port = service
    prometheus = Prometheus(port, chart_rules(tmp_path / "rules.yaml"), tmp_path)
    panels = Panels(prometheus)
    started = time.monotonic()
    try:
        # Normal flow: every trade posted, the one of a withdrawn signal not; no alert.
        publish(settings, *(trade_event(f"OK-{i}") for i in range(8)))
        publish(settings, trade_event("OFF-1", signal_id="SIG-OFF"))
        wait_checking(
            panels,
            lambda: (
                prometheus.query('trust_traces_pushed_total{adapter="webhook"} >= 8')
                and prometheus.query("trust_trace_withdrawn_total >= 1")
            ),
            timeout=60,
            what="eight posts and one withdrawal, scraped",
        )
        end = time.monotonic() + 5  # a few evaluations of every rule on that data
        wait_checking(panels, lambda: time.monotonic() > end, 10, "evaluations")
        assert prometheus.alerts() == [], "an alert fired in normal flow"
        assert proc.proc.poll() is None

        # The tracker is down for the whole retry ladder: the trades are dead-lettered.
        tracker.default = Reply(503)
        publish(settings, *(trade_event(f"DOWN-{i}") for i in range(3)))
        wait_checking(
            panels,
            lambda: prometheus.firing("TraceDeliveryAbandoned", adapter="webhook"),
            timeout=60,
            what="TraceDeliveryAbandoned",
        )

        # The tracker rejects every post: the circuit breaker opens and holds the adapter.
        tracker.default = Reply(401, b'{"error": "bad token"}')
        publish(settings, *(trade_event(f"AUTH-{i}") for i in range(5)))
        wait_checking(
            panels,
            lambda: prometheus.firing("TraceAdapterPaused", adapter="webhook"),
            timeout=60,
            what="TraceAdapterPaused",
        )

        # Stage 1 cannot write to the delay topic while trades keep arriving.
        refuse_writes(settings, layout(settings).delay, refuse=True)
        stream = Stream(settings, count=60, rate=2).start()
        alert = wait_checking(
            panels,
            lambda: prometheus.firing("TraceInputStalled", topic=settings.trace_input_topic),
            timeout=90,
            what="TraceInputStalled",
        )
        assert float(alert[0]["value"]) > 5
        assert proc.proc.poll() is None, "stage 1's fault must stall it, not end the service"
        wait_checking(panels, stream.done, timeout=60, what="the trades to be published")
        panels.check()

        assert panels.silent() == [], "dashboard queries that never returned data"
        assert panels.unlabelled == []
        # Guards the two checks above, on the same data: a misspelt metric returns
        # nothing, a misspelt label in `by` returns series without the legend's label.
        sel = 'namespace="$namespace", job="$job"'
        typo = dashboard.Query("typo", f"sum by (adapter) (trust_trace_bufered{{{sel}}})", "")
        assert panels.run(typo) == (False, [])
        label = dashboard.Query(
            "label", f"sum by (adaptor) (trust_trace_buffered{{{sel}}})", "{{adapter}}"
        )
        assert panels.run(label)[0] and panels.run(label)[1]
        print(f"scenario took {time.monotonic() - started:.0f} s")
    finally:
        prometheus.close()
