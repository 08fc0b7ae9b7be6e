"""What packages the service, read without building anything: the package list that
pyproject.toml spells out, the Dockerfile, .dockerignore and compose.yaml."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from devenv.trades import IMAGE_ENV
from tests.support import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = "\n".join(
    line for line in (ROOT / "Dockerfile").read_text().splitlines() if not line.startswith("#")
)
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def test_every_subpackage_is_listed_and_the_schemas_are_mapped() -> None:
    """The list is explicit (see pyproject.toml): a new subpackage left out of it would
    be missing from the wheel while every test on the checkout still passes."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "trace_stream").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == found | {"trace_stream.schemas"}
    mapped = ROOT / setuptools["package-dir"]["trace_stream.schemas"]
    assert mapped == ROOT / "schemas"
    assert sorted(mapped.glob("*.avsc")), "no schema where the package data is taken from"


def test_services_started_for_tests_and_benchmarks_run_with_the_images_environment() -> None:
    for name, value in IMAGE_ENV.items():
        assert re.search(rf"^\s+{name}={value}\b", DOCKERFILE, re.M), name


def test_the_image_installs_the_lock_and_carries_the_project_version() -> None:
    version = re.search(r"^ARG VERSION=(\S+)$", DOCKERFILE, re.M)
    assert version, "no ARG VERSION default"
    assert version[1] == PYPROJECT["project"]["version"]
    assert "--require-hashes" in DOCKERFILE
    assert "-r requirements.lock" in DOCKERFILE
    assert "--no-deps" in DOCKERFILE
    assert "TRACE_SCHEMA_DIR" not in DOCKERFILE
    assert re.search(r"^USER 10001$", DOCKERFILE, re.M)
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "wheel" not in final.lower(), "the final stage must not touch the wheels"


def test_the_build_context_lets_in_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        src.rstrip("/")
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    }
    assert copied
    assert copied <= allowed, copied - allowed


def test_compose_services_refer_to_each_other_consistently() -> None:
    built = {s["image"] for s in SERVICES.values() if "build" in s}
    for name, service in SERVICES.items():
        for dep, how in service.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on an unknown service {dep}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck"
            else:
                assert condition == "service_completed_successfully"
                assert SERVICES[dep].get("restart") == "no", f"{dep} is no one-shot"
        if service.get("pull_policy") == "never":
            assert service["image"] in built, f"{name}'s image is built by no service"
    service = SERVICES["trace-stream"]
    assert set(service["depends_on"]) == {"kafka", "topics", "tracker"}
    env = service["environment"]
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap.split(":")[0] == "kafka"
    assert (
        f"INTERNAL://{bootstrap}" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    assert env["WEBHOOK_ENDPOINT"].startswith("http://tracker:8080/")
    assert "8080" in SERVICES["tracker"]["command"][0]
    assert "topics ensure" in SERVICES["topics"]["command"][0]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", SERVICES["kafka"]["image"])
