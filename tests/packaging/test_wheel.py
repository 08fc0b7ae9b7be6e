"""The package stands alone: built as an sdist and a wheel from it, installed into a
fresh virtualenv outside the checkout with its dependencies from requirements.lock
(hash-checked), it reports its version and, run with no TRACE_SCHEMA_DIR and no
PYTHONPATH, posts a trade from a real broker to a real tracker.

Cost: about 30 s here, the broker's start aside: the build (uv's cache keeps the
build backend) about 4 s, the install about 14 s, because pip downloads the locked
wheels (about 30 MB) each time where its HTTP cache is not kept (on this machine it
stays empty); with a warm pip cache the install takes a few seconds. A first run on a
new machine also downloads the build backend: allow a minute or two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.tracker import Tracker
from tests.support import ROOT, env_for, make_settings, publish, trade_event, wait_for

SCHEMAS = sorted(p.name for p in (ROOT / "schemas").glob("*.avsc"))
BIN = Path(sys.executable).parent


def standalone(env: dict[str, str]) -> dict[str, str]:
    """`env` without anything that would let the checkout stand in for the install."""
    drop = ("PYTHONPATH", "TRACE_SCHEMA_DIR", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in env.items() if k not in drop}


def run(*argv: str | Path, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=standalone(dict(os.environ)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv[:3]} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(sdist, wheel built from that sdist, what the build printed)."""
    out = tmp_path_factory.mktemp("dist")
    printed = run(BIN / "uv", "build", "--out-dir", out, ROOT, cwd=out)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel, printed


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, dist: tuple[Path, Path, str]) -> Path:
    """A fresh virtualenv holding the locked dependencies and the wheel, nothing else."""
    home = tmp_path_factory.mktemp("standalone")
    env = home / "venv"
    # Without a pip of its own (seconds saved): the test's pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", env, cwd=home)
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", env / "bin/python"]
    install: list[str | Path] = [*pip, "install", "--quiet", "--no-compile"]
    # As the Dockerfile does: the lock, hash-checked and wheels only, then the wheel alone.
    lock = ROOT / "requirements.lock"
    run(*install, "--require-hashes", "--only-binary=:all:", "-r", lock, cwd=home)
    run(*install, "--no-deps", dist[1], cwd=home)
    run(*pip, "check", cwd=home)
    return env


def test_the_build_is_clean_and_ships_the_schemas(dist: tuple[Path, Path, str]) -> None:
    sdist, wheel, printed = dist
    assert "deprecat" not in printed.lower(), printed
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".avsc")) == SCHEMAS
    assert {f"trace_stream/schemas/{s}" for s in SCHEMAS} <= set(names)
    assert b"License-Expression: Apache-2.0" in metadata
    with tarfile.open(sdist) as tar:
        in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {f"schemas/{s}" for s in SCHEMAS} <= in_sdist


def test_installed_package_reports_its_version_and_finds_its_schemas(
    venv: Path, tmp_path: Path
) -> None:
    version = run(venv / "bin/trace-stream", "--version", cwd=tmp_path).strip()
    assert version == "trace-stream 0.1.0"
    where = run(
        venv / "bin/python",
        "-c",
        "import trace_stream.codec as c; print(c.schema_dir()); c.schema('dead_letter')",
        cwd=tmp_path,
    ).strip()
    assert Path(where).is_relative_to(venv), where


@pytest.fixture
def service_log(tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "service.log"
    yield log
    if log.exists():
        sys.stderr.write(log.read_text()[-3000:])


@pytest.mark.kafka
def test_installed_service_posts_a_trade_and_stops_on_sigterm(
    venv: Path, kafka_bootstrap: str, tracker: Tracker, tmp_path: Path, service_log: Path
) -> None:
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    env = standalone(env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces"))
    with service_log.open("ab") as log:
        proc = subprocess.Popen(
            [venv / "bin/trace-stream", "run"],
            cwd=tmp_path,
            env={**env, "LOG_FORMAT": "json"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            publish(settings, trade_event("T-wheel"))
            got = wait_for(lambda: tracker.requests("/traces"), timeout=60, what="the post")
            assert got[0].json()["trade_id"] == "T-wheel"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
