"""The Grafana dashboard: valid against the dashboard models of the Apache-2.0
grafana-foundation-sdk, and shipped by the chart as an opt-in ConfigMap for Grafana's
dashboard sidecar. Its queries are run against a real Prometheus in
tests/integration/test_prometheus.py."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.chart.dashboard import load, queries
from tests.chart.test_chart import of_kind, render


def round_trip(data: dict[str, Any]) -> Any:
    """The dashboard decoded into the SDK's typed models (panels and Prometheus queries
    included, through its plugin registry) and encoded again."""
    register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))


def lost(given: Any, kept: Any, path: str = "") -> list[str]:
    """What the models dropped or changed: fields the dashboard schema does not have.
    (Fields the models add are their defaults.)"""
    if isinstance(given, dict) and isinstance(kept, dict):
        return [
            problem
            for key, value in given.items()
            for problem in (
                lost(value, kept[key], f"{path}/{key}") if key in kept else [f"{path}/{key}"]
            )
        ]
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [
            p
            for i, (a, b) in enumerate(zip(given, kept, strict=True))
            for p in lost(a, b, f"{path}[{i}]")
        ]
    return [] if given == kept else [f"{path}: {given!r} became {kept!r}"]


def test_dashboard_matches_the_grafana_dashboard_models() -> None:
    dashboard = load()
    assert lost(dashboard, round_trip(dashboard)) == []
    kinds = {panel["type"] for panel in dashboard["panels"]}
    assert kinds <= {"row", "timeseries", "table"}


def test_schema_check_catches_a_misspelled_field() -> None:
    # Guards the test above: a field Grafana does not know must not survive unnoticed.
    dashboard = load()
    dashboard["panels"][1]["targets"][0]["exprr"] = "up"
    dashboard["panels"][1]["options"]["legnd"] = {}
    assert sorted(lost(dashboard, round_trip(dashboard))) == [
        "/panels[1]/options/legnd",
        "/panels[1]/targets[0]/exprr",
    ]


def test_every_panel_queries_prometheus_through_the_variables() -> None:
    dashboard = load()
    found = queries(dashboard)
    assert len(found) >= 20
    for query in found:
        assert 'namespace="$namespace"' in query.expr, query
        assert 'job="$job"' in query.expr, query
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace", "job", "adapter"]


def test_dashboard_configmap_is_opt_in_and_labelled_for_the_sidecar() -> None:
    assert [
        c
        for c in of_kind(render("default-values.yaml"), "ConfigMap")
        if "dashboard" in c["metadata"]["name"]
    ] == []
    [configmap] = [
        c
        for c in of_kind(render("monitoring-values.yaml"), "ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Trading"}
    assert json.loads(configmap["data"]["trace-stream.json"]) == load()
    custom = render(
        "default-values.yaml",
        "dashboard.enabled=true",
        "dashboard.label=dashboards",
        "dashboard.labelValue=trace",
        "dashboard.namespace=monitoring",
    )
    [configmap] = [
        c for c in of_kind(custom, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["dashboards"] == "trace"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"
