"""The Helm chart renders valid, hardened Kubernetes objects for every CI values file.

Each charts/trace-stream/ci/*-values.yaml variant is linted, rendered and checked against
the Kubernetes JSON schemas in strict mode; the alert rules go through promtool. The
tools come from devenv/tools/install.sh. Without them these tests skip on a developer's
machine but fail under CI (CI set), where a skip would hide that the chart went unchecked.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "trace-stream"
VARIANTS = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.30.0"
RELEASE = "ts"
CACHE_BIN = Path(os.environ.get("TRACE_STREAM_CACHE", Path.home() / ".cache/trace-stream")) / "bin"
# Prometheus Operator kinds: the Kubernetes schemas do not know them; tested apart.
OPERATOR_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """Path of a tool on PATH or in the install script's cache dir; skips or fails if absent."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), str(CACHE_BIN)]))
    if path is None:
        reason = f"{name} is not on PATH nor in {CACHE_BIN}: run devenv/tools/install.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)


def helm_template(variant: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of one ci values file, with `--set` overrides."""
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION]
    args += ["--values", str(CHART / "ci" / variant)]
    for override in overrides:
        args += ["--set", override]
    return run(tool("helm"), *args)


@functools.cache
def render(variant: str, *overrides: str) -> tuple[Manifest, ...]:
    """Rendered objects, tests included. Cached: most tests read the same few renders."""
    result = helm_template(variant, *overrides)
    assert result.returncode == 0, result.stderr
    return tuple(obj for obj in yaml.safe_load_all(result.stdout) if obj)


def of_kind(objects: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: tuple[Manifest, ...], kind: str) -> Manifest:
    [obj] = of_kind(objects, kind)
    return obj


def pod_templates(objects: tuple[Manifest, ...]) -> Iterator[tuple[str, Manifest, Manifest]]:
    """(name, pod metadata, pod spec) of every pod the chart creates: workload, hook, test."""
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in {"StatefulSet", "Job"}:
            template = obj["spec"]["template"]
            yield name, template["metadata"], template["spec"]
        elif obj["kind"] == "Pod":
            yield name, obj["metadata"], obj["spec"]


def workload(objects: tuple[Manifest, ...]) -> tuple[Manifest, Manifest]:
    """The StatefulSet and its only container."""
    statefulset = one(objects, "StatefulSet")
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    return statefulset, container


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_strict(variant: str) -> None:
    values = str(CHART / "ci" / variant)
    args = ("lint", "--strict", "--kube-version", KUBERNETES_VERSION, "--values", values)
    result = run(tool("helm"), *args, str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


def validate_kubernetes(objects: list[Manifest], tmp: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate in strict mode: unknown fields are errors, not ignored."""
    manifest = tmp / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    validator = tool("kubernetes-validate")
    return run(validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(manifest))


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifests_match_kubernetes_schemas(variant: str, tmp_path: Path) -> None:
    objects = [obj for obj in render(variant) if obj["kind"] not in OPERATOR_KINDS]
    result = validate_kubernetes(objects, tmp_path)
    # The validator only warns about a kind it has no schema for, which for a built-in
    # kind means a wrong apiVersion: any output at all fails.
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_schema_validation_rejects_unknown_fields(tmp_path: Path) -> None:
    # Guards the test above: strict validation must fail on a field Kubernetes lacks.
    statefulset, _ = workload(render("default-values.yaml"))
    broken = {**statefulset, "spec": {**statefulset["spec"], "replicaCont": 3}}
    result = validate_kubernetes([broken], tmp_path)
    assert result.returncode != 0
    assert "replicaCont" in result.stdout


def test_prometheus_rules_pass_promtool(tmp_path: Path) -> None:
    rule = one(render("monitoring-values.yaml"), "PrometheusRule")
    alerts = {r.get("alert") for group in rule["spec"]["groups"] for r in group["rules"]}
    expected = {
        "TraceDeliveryAbandoned",
        "TraceFailureRateHigh",
        "TraceDueLagHigh",
        "TraceBufferFull",
    }
    assert expected | {"TraceStreamDown"} <= alerts
    rules = tmp_path / "rules.yaml"
    # A PrometheusRule's spec is a Prometheus rule file: {groups: [...]}.
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = run(tool("promtool"), "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_monitor_scrapes_the_metrics_port() -> None:
    objects = render("monitoring-values.yaml")
    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]


@pytest.mark.parametrize(
    "typo", ["replicaCont=3", "kafka.bootstrapServer=k:9092", "adapters.webhook.endpiont=x"]
)
def test_values_typo_is_rejected_by_the_schema(typo: str) -> None:
    result = helm_template("default-values.yaml", typo)
    misspelled = typo.split("=")[0].rsplit(".", 1)[-1]
    assert result.returncode != 0
    assert f"additional properties '{misspelled}' not allowed" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_are_hardened(variant: str) -> None:
    pods = list(pod_templates(render(variant)))
    assert pods
    for name, _, spec in pods:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name


def test_writable_paths_are_volumes() -> None:
    # The root filesystem is read-only, so every path the service writes is a volume.
    objects = render("monitoring-values.yaml")
    _, container = workload(objects)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", one(objects, "ConfigMap")["data"]["FILE_EXPORT_DIR"]} <= mounts


CANARIES = {
    "kafkaSaslPassword": "canary-kafka-1f3a",
    "webhookAuthToken": "canary-webhook-7c2e",
    "webhookSigningSecret": "canary-signing-9d41",
    "myfxbookWebhookToken": "canary-myfxbook-52b0",
    "alertWebhookUrl": "canary-alert-e8a6",
    "schemaRegistryBasicAuth": "user:canary-registry-4b7d",
}


def with_canaries(variant: str) -> tuple[Manifest, ...]:
    return render(variant, *(f"secrets.{key}={value}" for key, value in CANARIES.items()))


def leaks(obj: Manifest, secret: str) -> bool:
    text = yaml.safe_dump(obj)
    return secret in text or base64.b64encode(secret.encode()).decode() in text


def test_secret_values_render_only_into_secrets() -> None:
    objects = with_canaries("default-values.yaml")
    secret = {obj["metadata"]["name"]: obj for obj in of_kind(objects, "Secret")}[
        f"{RELEASE}-trace-stream"
    ]
    stored = {base64.b64decode(value).decode() for value in secret["data"].values()}
    assert set(CANARIES.values()) <= stored
    for obj in objects:
        if obj["kind"] != "Secret":
            assert not [c for c in CANARIES.values() if leaks(obj, c)], obj["kind"]


def test_existing_secret_replaces_the_chart_secret() -> None:
    objects = with_canaries("existing-secret-values.yaml")
    assert not [obj["kind"] for obj in objects for c in CANARIES.values() if leaks(obj, c)]
    _, container = workload(objects)
    assert {"secretRef": {"name": "trace-stream-secrets"}} in container["envFrom"]


def test_statefulset_names_transactional_producers_after_the_pod() -> None:
    objects = render("default-values.yaml")
    statefulset, container = workload(objects)
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["TRACE_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["replicas"] == 2
    assert container["command"] == ["trace-stream", "run"]
    service = one(objects, "Service")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"


def test_probes_use_the_metrics_port() -> None:
    _, container = workload(render("default-values.yaml"))
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_selectors_match_the_service_pods_only(variant: str) -> None:
    objects = render(variant)
    statefulset, _ = workload(objects)
    selector = statefulset["spec"]["selector"]["matchLabels"]
    assert set(selector) == SELECTOR_KEYS
    assert selector.items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    assert [s["spec"]["selector"] for s in of_kind(objects, "Service")] == [selector]
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"] == selector
    # The topics hook and the helm test pod must not count as replicas for the
    # Service, the PodDisruptionBudget or the scrape.
    for name, metadata, _ in pod_templates(objects):
        if not name.startswith("StatefulSet/"):
            assert not selector.items() <= metadata["labels"].items(), name


def test_grace_period_outlasts_the_shutdown_timeout() -> None:
    objects = render("default-values.yaml")
    statefulset, _ = workload(objects)
    timeout = float(one(objects, "ConfigMap")["data"]["TRACE_SHUTDOWN_TIMEOUT_SECONDS"])
    # The service ends itself at most 10 s after its drain timeout (cli.GRACE).
    assert statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > timeout + 10
    result = helm_template("default-values.yaml", "trace.shutdownTimeoutSeconds=35")
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds must exceed" in result.stderr


def test_config_change_rolls_the_pods() -> None:
    def checksum(*overrides: str) -> str:
        statefulset, _ = workload(render("default-values.yaml", *overrides))
        return str(statefulset["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() != checksum("trace.delayMinutes=7")


def test_topics_hook_runs_before_install_and_upgrade() -> None:
    job = one(render("default-values.yaml"), "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["trace-stream", "topics", "ensure"]
    # Inline env: at pre-install the release's ConfigMap does not exist yet.
    assert "KAFKA_BOOTSTRAP_SERVERS" in {entry["name"] for entry in container["env"]}
    assert of_kind(render("s3-export-values.yaml"), "Job") == []
