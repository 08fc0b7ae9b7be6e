"""The Helm chart renders valid, hardened Kubernetes objects for every CI values file.

Each charts/trace-stream/ci/*-values.yaml variant is linted, rendered and checked against
the Kubernetes JSON schemas in strict mode; the custom resources (ServiceMonitor,
PrometheusRule, KEDA's ScaledObject) against the schemas of their CRDs, as strictly; the
alert rules go through promtool. The tools come from devenv/tools/install.sh, the CRDs
from their Go modules (`go mod download`). Without them these tests skip on a developer's
machine but fail under CI (CI set), where a skip would hide that the chart went unchecked.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "trace-stream"
VARIANTS = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
# The version the install test runs (KWOK): the chart must be valid for it.
KUBERNETES_VERSION = "1.36.0"
RELEASE = "ts"
FULLNAME = f"{RELEASE}-trace-stream"
CACHE_BIN = Path(os.environ.get("TRACE_STREAM_CACHE", Path.home() / ".cache/trace-stream")) / "bin"
# Custom resource kinds, which the Kubernetes schemas do not know: tested apart, against
# their CRDs. The Go module and file of each CRD, the versions devenv/kube/build.sh
# applies to the install test's cluster.
CRDS = {
    "ServiceMonitor": (
        "github.com/prometheus-operator/prometheus-operator@v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    "PrometheusRule": (
        "github.com/prometheus-operator/prometheus-operator@v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    "ScaledObject": (
        "github.com/kedacore/keda/v2@v2.21.0",
        "config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
}
CRD_KINDS = frozenset(CRDS)
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}

Manifest = dict[str, Any]


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine, fail under CI: there a skip would hide a gap."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def tool(name: str) -> str:
    """Path of a tool on PATH or in the install script's cache dir; skips or fails if absent."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), str(CACHE_BIN)]))
    if path is None:
        unavailable(f"{name} is not on PATH nor in {CACHE_BIN}: run devenv/tools/install.sh")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)


def helm_template(variant: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of one ci values file, with `--set` overrides (`--set-json` for
    an override that starts with "json:")."""
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION]
    args += ["--values", str(CHART / "ci" / variant)]
    for override in overrides:
        if override.startswith("json:"):
            args += ["--set-json", override.removeprefix("json:")]
        else:
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
    objects = [obj for obj in render(variant) if obj["kind"] not in CRD_KINDS]
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
        "TraceAdapterPaused",
        "TraceAdapterStopped",
        "TraceTrackerPaused",
        "TraceInputStalled",
        "TraceSignalSettingsInvalid",
    }
    assert expected | {"TraceStreamDown"} <= alerts
    rules = tmp_path / "rules.yaml"
    # A PrometheusRule's spec is a Prometheus rule file: {groups: [...]}.
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = run(tool("promtool"), "check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_links_its_runbook_page() -> None:
    base = "https://runbooks.example.com/trace-stream/"
    objects = render("default-values.yaml", "prometheusRule.enabled=true")
    custom = render(
        "default-values.yaml",
        "prometheusRule.enabled=true",
        f"prometheusRule.runbookBaseUrl={base}",
    )
    for rules, url in (
        (objects, "https://trace-stream.github.io/trace-stream/runbooks/"),
        (custom, base),
    ):
        rule = one(rules, "PrometheusRule")
        alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
        assert len(alerts) == 10
        for alert in alerts:
            name = alert["alert"]
            # MkDocs renders docs/runbooks/<AlertName>.md at runbooks/<AlertName>/.
            assert alert["annotations"]["runbook_url"] == f"{url}{name}/"
            page = CHART.parents[1] / "docs" / "runbooks" / f"{name}.md"
            assert page.is_file(), f"{name} has no runbook: {page}"


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
    [config] = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == FULLNAME]
    assert {"/tmp", config["data"]["FILE_EXPORT_DIR"]} <= mounts


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


def test_signal_settings_topic_is_configured_and_created_only_when_asked() -> None:
    objects = render("default-values.yaml")
    assert one(objects, "ConfigMap")["data"]["TRACE_SIGNAL_SETTINGS_TOPIC"] == "signal.tracing"
    off = render("default-values.yaml", "trace.signalSettingsTopic=")
    assert one(off, "ConfigMap")["data"]["TRACE_SIGNAL_SETTINGS_TOPIC"] == ""
    asked = one(render("default-values.yaml", "topics.ensure.signalSettings=true"), "Job")
    [container] = asked["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["trace-stream", "topics", "ensure", "--signal-settings"]
    bad = helm_template("default-values.yaml", "trace.signalSettingsTopic=bad topic")
    assert bad.returncode != 0 and "signalSettingsTopic" in bad.stderr


def values_of(variant: str) -> Manifest:
    values: Manifest = yaml.safe_load((CHART / "ci" / variant).read_text())
    return values


def extra_manifests(variant: str) -> set[tuple[str, str]]:
    """(kind, name) of a ci file's extraManifests: rendered as given, without commonLabels."""
    return {
        (o["kind"], o["metadata"]["name"]) for o in values_of(variant).get("extraManifests", [])
    }


def pod_spec(obj: Manifest) -> Manifest:
    spec: Manifest = obj["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("variant", VARIANTS)
def test_common_labels_are_on_every_object(variant: str) -> None:
    objects = render(variant, "commonLabels.team=trading", "commonLabels.tier=backend")
    labelled = [
        o for o in objects if (o["kind"], o["metadata"]["name"]) not in extra_manifests(variant)
    ]
    assert labelled
    for obj in labelled:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = obj["metadata"]["labels"]
        assert {"team": "trading", "tier": "backend"}.items() <= labels.items(), name
        assert labels["app.kubernetes.io/managed-by"] == "Helm", name
    for name, metadata, _ in pod_templates(objects):
        assert metadata["labels"]["team"] == "trading", name
    # Never in a selector: those are immutable once the StatefulSet exists.
    statefulset, _ = workload(objects)
    assert set(statefulset["spec"]["selector"]["matchLabels"]) == SELECTOR_KEYS


def test_common_labels_cover_hooks_and_monitoring() -> None:
    objects = render("monitoring-values.yaml", "commonLabels.team=trading")
    kinds = {o["kind"] for o in objects if o["metadata"]["labels"].get("team") == "trading"}
    assert {"Job", "Pod", "ServiceMonitor", "PrometheusRule", "Secret", "StatefulSet"} <= kinds
    # The topics hook's own Secret (SASL password) is a hook object too.
    hooks = [o for o in objects if "helm.sh/hook" in o["metadata"].get("annotations", {})]
    assert {o["kind"] for o in hooks} == {"Secret", "Job", "Pod"}
    assert all(o["metadata"]["labels"]["team"] == "trading" for o in hooks)


@pytest.mark.parametrize(
    "label", ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"]
)
def test_common_labels_cannot_change_selector_labels(label: str) -> None:
    result = helm_template("default-values.yaml", "json:commonLabels=" + json.dumps({label: "x"}))
    assert result.returncode != 0
    # (helm names a wrong location for a propertyNames failure, so not checked.)
    assert f"invalid propertyName '{label}'" in result.stderr


def images(objects: tuple[Manifest, ...]) -> set[str]:
    return {c["image"] for _, _, spec in pod_templates(objects) for c in spec["containers"]}


def test_image_digest_replaces_the_tag() -> None:
    values = values_of("keda-values.yaml")["image"]
    objects = render("keda-values.yaml")
    assert images(objects) == {f"{values['repository']}@{values['digest']}"}
    statefulset, _ = workload(objects)
    # The version label still names the release's version, not the digest.
    assert statefulset["metadata"]["labels"]["app.kubernetes.io/version"] == values["tag"]
    assert images(render("default-values.yaml")) == {"trace-stream:0.1.0"}
    assert helm_template("default-values.yaml", "image.digest=latest").returncode != 0


def test_topology_spread_fills_in_the_selector() -> None:
    objects = render("network-policy-values.yaml")
    statefulset, _ = workload(objects)
    spread = pod_spec(statefulset)["topologySpreadConstraints"]
    given = values_of("network-policy-values.yaml")["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [c["topologyKey"] for c in given]
    # No labelSelector given: the chart's selector labels, which match the replicas only.
    assert spread[0]["labelSelector"] == statefulset["spec"]["selector"]
    assert {k: v for k, v in spread[0].items() if k != "labelSelector"} == given[0]
    # A labelSelector given is kept as it is.
    assert spread[1] == given[1]
    assert "topologySpreadConstraints" not in pod_spec(workload(render("default-values.yaml"))[0])


def hook_weight(obj: Manifest) -> int:
    return int(obj["metadata"]["annotations"]["helm.sh/hook-weight"])


def test_priority_class_applies_to_replicas_and_topics_hook() -> None:
    objects = render("network-policy-values.yaml")
    [priority_class] = of_kind(objects, "PriorityClass")
    name = priority_class["metadata"]["name"]
    statefulset, job = one(objects, "StatefulSet"), one(objects, "Job")
    assert pod_spec(statefulset)["priorityClassName"] == name
    assert pod_spec(job)["priorityClassName"] == name
    # The API server refuses a pod naming a missing class, and the topics hook runs
    # before the release's regular objects: the ci file's class is an earlier hook.
    assert "pre-install" in priority_class["metadata"]["annotations"]["helm.sh/hook"]
    assert hook_weight(priority_class) < hook_weight(job)
    for _, _, spec in pod_templates(render("default-values.yaml")):
        assert "priorityClassName" not in spec


def test_network_policy_admits_scrapes_and_allows_kafka_dns_and_trackers() -> None:
    objects = render("network-policy-values.yaml")
    policy = one(objects, "NetworkPolicy")
    statefulset, container = workload(objects)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    spec = policy["spec"]
    assert spec["podSelector"] == statefulset["spec"]["selector"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: the metrics port only, from the configured peers and the helm test pod.
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert [p["name"] for p in container["ports"]] == ["metrics"]
    peers = values_of("network-policy-values.yaml")["networkPolicy"]["ingress"]["from"]
    assert ingress["from"][: len(peers)] == peers
    [test_peer] = ingress["from"][len(peers) :]
    [(_, test_pod, _)] = [p for p in pod_templates(objects) if p[0].startswith("Pod/")]
    assert test_peer["podSelector"]["matchLabels"].items() <= test_pod["labels"].items()
    # Egress: DNS, the brokers' port from kafka.bootstrapServers, HTTPS, extra rules.
    ports = [sorted((p["port"], p["protocol"]) for p in rule["ports"]) for rule in spec["egress"]]
    assert ports == [[(53, "TCP"), (53, "UDP")], [(9092, "TCP")], [(443, "TCP")], [(8081, "TCP")]]
    kafka_rule = spec["egress"][1]
    assert kafka_rule["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}
    ]
    # Opt-in.
    assert of_kind(render("default-values.yaml"), "NetworkPolicy") == []


def test_network_policy_defaults() -> None:
    # Scrapes from any source (port-only, as the prometheus-community charts do); the
    # Kafka ports come from the bootstrap list, deduplicated, 9092 where none is named.
    objects = render(
        "monitoring-values.yaml",
        "networkPolicy.enabled=true",
        "kafka.bootstrapServers=b-1:9096\\,b-2:9096\\,SSL://b-3:9094\\,b-4",
    )
    spec = one(objects, "NetworkPolicy")["spec"]
    assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    kafka_ports = [p["port"] for p in spec["egress"][1]["ports"]]
    assert kafka_ports == [9096, 9094, 9092]
    assert "to" not in spec["egress"][1]
    spec = one(
        render(
            "default-values.yaml",
            "networkPolicy.enabled=true",
            "networkPolicy.egress.enabled=false",
        ),
        "NetworkPolicy",
    )["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert "egress" not in spec


def test_extra_volumes_mount_the_kafka_ca_into_replicas_and_topics_hook() -> None:
    variant = "kafka-tls-values.yaml"
    values = values_of(variant)
    objects = render(variant)
    [config] = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == FULLNAME]
    ca_file = json.loads(config["data"]["KAFKA_EXTRA_CONFIG"])["ssl.ca.location"]
    [mount] = values["extraVolumeMounts"]
    assert ca_file.startswith(mount["mountPath"] + "/")
    [volume] = values["extraVolumes"]
    secrets = {o["metadata"]["name"]: o for o in of_kind(objects, "Secret")}
    ca_secret = secrets[volume["secret"]["secretName"]]
    assert "BEGIN CERTIFICATE" in ca_secret["stringData"]["ca.crt"]
    for obj in (one(objects, "StatefulSet"), one(objects, "Job")):
        spec = pod_spec(obj)
        [container] = spec["containers"]
        assert volume in spec["volumes"], obj["kind"]
        assert mount in container["volumeMounts"], obj["kind"]
        assert container["envFrom"][-1] == values["extraEnvFrom"][0], obj["kind"]
    # The topics hook runs before the release's regular objects: what it mounts must
    # be an earlier hook (or exist before the install).
    job = one(objects, "Job")
    assert "pre-install" in ca_secret["metadata"]["annotations"]["helm.sh/hook"]
    assert hook_weight(ca_secret) < hook_weight(job)


def test_extra_manifests_go_through_tpl() -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: '{{ .Release.Name }}-extra'\n"
    as_object = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "{{ .Release.Name }}-obj"},
    }
    objects = render(
        "default-values.yaml", "json:extraManifests=" + json.dumps([manifest, as_object])
    )
    names = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
    assert {f"{RELEASE}-extra", f"{RELEASE}-obj"} <= names


def test_startup_probe_outlasts_the_wait_for_brokers() -> None:
    def probes(*overrides: str) -> Manifest:
        _, container = workload(render("default-values.yaml", *overrides))
        return container

    container = probes()
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "metrics"}
    config = one(render("default-values.yaml"), "ConfigMap")["data"]
    timeout = float(config["TRACE_STARTUP_TIMEOUT_SECONDS"])
    assert startup["periodSeconds"] * startup["failureThreshold"] > timeout
    # The startup probe holds the liveness probe off: no initial delay needed.
    assert "initialDelaySeconds" not in container["livenessProbe"]
    longer = probes("trace.startupTimeoutSeconds=900")["startupProbe"]
    assert longer["periodSeconds"] * longer["failureThreshold"] > 900
    assert probes("startupProbe.failureThreshold=7")["startupProbe"]["failureThreshold"] == 7


def test_keda_scales_the_statefulset_on_the_due_lag() -> None:
    objects = render("keda-values.yaml")
    values = values_of("keda-values.yaml")["autoscaling"]["keda"]
    scaled = one(objects, "ScaledObject")
    statefulset, _ = workload(objects)
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 12)
    assert spec["pollingInterval"] == 15
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == values["behavior"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert metadata["serverAddress"] == values["prometheus"]["serverAddress"]
    assert metadata["threshold"] == "120"
    name = statefulset["metadata"]["name"]
    assert metadata["query"] == (
        f'max(trust_trace_due_lag_seconds{{namespace="default",pod=~"{name}-[0-9]+"}})'
    )
    # KEDA owns the replica count: a replicas field would reset it on every upgrade.
    assert "replicas" not in statefulset["spec"]
    assert one(render("default-values.yaml"), "StatefulSet")["spec"]["replicas"] == 2
    assert of_kind(render("default-values.yaml"), "ScaledObject") == []
    # The due lag needs scraping; the PodDisruptionBudget holds at any replica count.
    assert of_kind(objects, "ServiceMonitor")
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_keda_query_can_be_overridden_with_templates() -> None:
    query = (
        'max(trust_trace_due_lag_seconds{namespace="{{ .Release.Namespace }}",adapter="webhook"})'
    )
    objects = render(
        "keda-values.yaml", "json:autoscaling.keda.prometheus.query=" + json.dumps(query)
    )
    [trigger] = one(objects, "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["query"] == (
        'max(trust_trace_due_lag_seconds{namespace="default",adapter="webhook"})'
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ("autoscaling.keda.maxReplicaCount=13",),
            "autoscaling.keda.maxReplicaCount (13) must not exceed topics.partitions (12)",
        ),
        (
            ("topics.partitions=4",),
            "autoscaling.keda.maxReplicaCount (12) must not exceed topics.partitions (4)",
        ),
        (
            ("autoscaling.keda.minReplicaCount=8", "autoscaling.keda.maxReplicaCount=6"),
            "autoscaling.keda.minReplicaCount (8) must not exceed",
        ),
        (
            ("autoscaling.keda.prometheus.serverAddress=",),
            "autoscaling.keda.prometheus.serverAddress is required",
        ),
        (("autoscaling.keda.minReplicaCount=0",), "minReplicaCount"),
    ],
)
def test_keda_settings_are_checked(overrides: tuple[str, ...], message: str) -> None:
    result = helm_template("keda-values.yaml", *overrides)
    assert result.returncode != 0
    assert message in result.stderr


@functools.cache
def module_dir(module: str) -> Path:
    """Source of a Go module at a version, from the module cache or the Go module proxy."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        [tool("go"), "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
        cwd=tempfile.gettempdir(),  # outside any module
    )
    if result.returncode != 0:
        unavailable(f"go mod download {module} failed: {result.stdout}{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


def crd_schema(api_version: str, kind: str) -> Manifest:
    """openAPIV3Schema of a custom resource kind at an apiVersion, from its CRD."""
    module, path = CRDS[kind]
    crd = yaml.safe_load((module_dir(module) / path).read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group
    assert crd["spec"]["names"]["kind"] == kind
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema: Manifest = served["schema"]["openAPIV3Schema"]
    return schema


TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def structural_errors(value: Any, schema: Manifest, path: str = "") -> list[str]:
    """What the API server's strict field validation would refuse under a CRD's
    structural schema: wrong types, unknown fields, missing required ones, enum and
    minimum violations. (JSON Schema libraries allow unknown fields by default.)"""
    where = path or "."
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        return [] if ok else [f"{where}: not an int or string"]
    kind = schema.get("type")
    if kind and not (
        isinstance(value, TYPES[kind]) and not (isinstance(value, bool) and kind != "boolean")
    ):
        return [f"{where}: {value!r} is not of type {kind}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value!r} below {schema['minimum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [
            f"{where}: missing {key}" for key in schema.get("required", []) if key not in value
        ]
        for key, item in value.items():
            if path == "" and key == "metadata":
                continue  # ObjectMeta: the API server's own, not the CRD's schema
            if key in properties:
                errors += structural_errors(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += structural_errors(item, schema["additionalProperties"], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{where}: unknown field {key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += structural_errors(item, schema["items"], f"{path}[{index}]")
    return errors


CUSTOM_RESOURCES = {
    "monitoring-values.yaml": {"ServiceMonitor", "PrometheusRule"},
    "keda-values.yaml": {"ScaledObject", "ServiceMonitor"},
}
"""The custom resources each variant renders; every other variant renders none."""


@pytest.mark.parametrize("variant", VARIANTS)
def test_custom_resources_match_their_crds(variant: str) -> None:
    custom = [obj for obj in render(variant) if obj["kind"] in CRD_KINDS]
    assert {obj["kind"] for obj in custom} == CUSTOM_RESOURCES.get(variant, set())
    for obj in custom:
        schema = crd_schema(obj["apiVersion"], obj["kind"])
        assert structural_errors(obj, schema) == [], obj["kind"]


def test_crd_validation_rejects_unknown_fields() -> None:
    # Guards the test above, as test_schema_validation_rejects_unknown_fields does.
    scaled = one(render("keda-values.yaml"), "ScaledObject")
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3, "pollingInterval": "30"}}
    errors = structural_errors(broken, crd_schema(scaled["apiVersion"], "ScaledObject"))
    assert ".spec: unknown field maxReplicas" in errors
    assert any(e.startswith(".spec.pollingInterval:") for e in errors)


def test_the_manual_example_renders(tmp_path: Path) -> None:
    # The values a reader copies from the manual's "Helm chart" section must install.
    page = (CHART.parents[1] / "docs" / "deploy.md").read_text()
    [example] = re.findall(r"```yaml\n# values.yaml\n(.*?)```", page, re.DOTALL)
    values = tmp_path / "values.yaml"
    values.write_text(example.replace("sha256:...", "sha256:" + "0" * 64))
    args = ["template", RELEASE, str(CHART), "--kube-version", KUBERNETES_VERSION]
    result = run(tool("helm"), *args, "--values", str(values))
    assert result.returncode == 0, result.stderr
    objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
    assert {"StatefulSet", "ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in objects}


def test_retry_jitter_and_rate_limits_render_as_the_service_reads_them() -> None:
    from trace_stream.settings import Settings  # the service's own reading of the env

    data = one(render("default-values.yaml"), "ConfigMap")["data"]
    assert data["TRACE_RETRY_JITTER"] == "0.15"
    assert "TRACE_RATE_LIMITS" not in data, "off by default"
    limits = 'trace.rateLimits={"webhook":{"perSecond":20,"burst":1,"perDay":1000000}}'
    data = one(render("default-values.yaml", "json:" + limits), "ConfigMap")["data"]
    read = Settings.model_validate({"trace_rate_limits": json.loads(data["TRACE_RATE_LIMITS"])})
    webhook = read.trace_rate_limits["webhook"]
    assert (webhook.per_second, webhook.burst, webhook.per_day) == (20, 1, 1_000_000)
    for bad in (
        'trace.rateLimits={"webhook":{"perSecnd":20}}',
        'trace.rateLimits={"webhook":{"perSecond":0}}',
    ):
        assert helm_template("default-values.yaml", "json:" + bad).returncode != 0, bad
    assert helm_template("default-values.yaml", "trace.retry.jitter=2").returncode != 0


def test_the_lookahead_budget_renders_as_the_service_reads_it() -> None:
    from trace_stream.settings import Settings  # the service's own reading of the env

    data = one(render("default-values.yaml"), "ConfigMap")["data"]
    assert (data["TRACE_LOOKAHEAD_MEMORY_MIB"], data["TRACE_MAX_BUFFERED"]) == ("48", "1000000")
    data = one(render("default-values.yaml", "json:trace.lookaheadMemoryMib=48.5"), "ConfigMap")[
        "data"
    ]
    read = Settings.model_validate(
        {"trace_lookahead_memory_mib": data["TRACE_LOOKAHEAD_MEMORY_MIB"]}
    )
    assert read.lookahead_bytes == int(48.5 * 2**20)
    assert helm_template("default-values.yaml", "trace.lookaheadMemoryMib=0").returncode != 0
