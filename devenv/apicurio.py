"""A real Schema Registry on loopback: Apicurio Registry, from Maven Central.

Its built app (a Quarkus "fast jar", `io.apicurio:apicurio-registry-app:<v>:tar.gz:all`,
about 160 MB) is fetched once with Maven and unpacked into the cache outside the
repository. It needs Java 21 or newer: `java_home()` finds one (`TRACE_REGISTRY_JAVA_HOME`,
else `JAVA_HOME`, else the newest JDK under /usr/lib/jvm) and says clearly when there
is none. Storage is the app's own H2 database, in a file in a temp directory (its
default is in memory) so that a restart keeps the schemas; the HTTP and management
ports are bound to 127.0.0.1. The Confluent-compatible API (`/apis/ccompat/v7`) is
what the platform's serializers and trace-stream use. Its default compatibility is
NONE (Confluent's is BACKWARD), so `start()` sets BACKWARD explicitly.

Differences from Confluent's registry seen here: ids are Apicurio content ids, rising
from 1 per registry but with gaps; the same schema text under two subjects gets one id,
but the same schema written with other whitespace is new content with a new id.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from devenv.broker import CACHE, free_port

VERSION = "3.3.3"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
MINIMUM_JAVA = 21
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/java"), Path("/opt/java"))
CCOMPAT = "/apis/ccompat/v7"


def _java_major(home: Path) -> int:
    """The feature version a JDK's `release` file names, 0 if unreadable."""
    try:
        text = (home / "release").read_text()
    except OSError:
        return 0
    match = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def java_home() -> Path:
    """A JDK of at least MINIMUM_JAVA; raises with what to do when there is none."""
    for variable in ("TRACE_REGISTRY_JAVA_HOME", "JAVA_HOME"):
        configured = os.environ.get(variable)
        if configured and _java_major(Path(configured)) >= MINIMUM_JAVA:
            return Path(configured)
    found = [
        (major, home)
        for root in JVM_DIRS
        if root.is_dir()
        for home in root.iterdir()
        if (home / "bin" / "java").exists() and (major := _java_major(home)) >= MINIMUM_JAVA
    ]
    if not found:
        raise RuntimeError(
            f"Apicurio Registry {VERSION} needs Java {MINIMUM_JAVA}+; none found in "
            f"{', '.join(map(str, JVM_DIRS))}. Install one (e.g. Temurin 21) or set "
            "TRACE_REGISTRY_JAVA_HOME."
        )
    return max(found)[1]


def fetch() -> Path:
    """The unpacked app directory (holding quarkus-run.jar); downloads it once."""
    home = CACHE / f"apicurio-registry-{VERSION}"
    if (home / ".complete").exists():
        return home
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Apicurio Registry")
    CACHE.mkdir(parents=True, exist_ok=True)
    download = Path(tempfile.mkdtemp(prefix="apicurio-download-", dir=CACHE))
    partial = Path(tempfile.mkdtemp(prefix="apicurio-", dir=CACHE))
    try:
        _download_into(download, partial)
        shutil.rmtree(home, ignore_errors=True)
        partial.rename(home)
    finally:
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    (home / ".complete").touch()
    return home


def _download_into(download: Path, unpacked: Path) -> None:
    copy = [
        "mvn",
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={ARTIFACT}",
        f"-DoutputDirectory={download}",
    ]
    result = subprocess.run(copy, capture_output=True, text=True, check=False, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not fetch {ARTIFACT}:\n{result.stdout}{result.stderr}")
    [tarball] = download.glob("*.tar.gz")
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")


class SchemaRejected(Exception):
    """The registry refused a schema (409: incompatible under the subject's rule; 422: invalid)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class LocalRegistry:
    """Start with `start()`, stop with `stop()`; `url` is the ccompat API's base URL, the
    value for SCHEMA_REGISTRY_URL.

    Its H2 database is a file in its own temp directory, so `halt()` then `resume()`
    restarts it on the same ports with the same schemas and ids, as a registry with
    durable storage comes back. `freeze()` / `thaw()` (SIGSTOP / SIGCONT) make it hang
    instead: connections are still accepted by the kernel, nothing is answered.
    """

    def __init__(self, heap: str = "384m") -> None:
        self.heap = heap
        self.port = free_port()
        self.management_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{CCOMPAT}"
        self.workdir = Path(tempfile.mkdtemp(prefix="trace-stream-registry-"))
        self.log_path = self.workdir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 120) -> str:
        """Start it and set the global compatibility to BACKWARD (Confluent's default)."""
        self._log = self.log_path.open("wb")
        self._launch(timeout)
        self.set_compatibility("BACKWARD")
        return self.url

    def _launch(self, timeout: float) -> None:
        app = fetch()
        java = java_home() / "bin" / "java"
        self._proc = subprocess.Popen(
            [
                str(java),
                f"-Xmx{self.heap}",
                "-XX:+UseSerialGC",
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={self.port}",
                "-Dquarkus.management.host=127.0.0.1",
                f"-Dquarkus.management.port={self.management_port}",
                # The app's default is an in-memory H2 database (jdbc:h2:mem:...).
                f"-Dapicurio.datasource.url=jdbc:h2:file:{self.workdir / 'db'}",
                "-Dquarkus.log.level=WARN",
                "-jar",
                str(app / "quarkus-run.jar"),
            ],
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Apicurio Registry exited early; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/subjects", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"Apicurio Registry did not start in {timeout}s; see {self.log_path}")

    def set_compatibility(self, level: str, subject: str | None = None) -> None:
        """The compatibility rule, globally or for one subject."""
        path = f"{self.url}/config" + (f"/{subject}" if subject else "")
        response = httpx.put(path, json={"compatibility": level}, timeout=10)
        response.raise_for_status()

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register an Avro schema under `subject` as a producer's serializer does
        (`POST /subjects/{subject}/versions`); its schema id. Raises SchemaRejected."""
        response = httpx.post(
            f"{self.url}/subjects/{subject}/versions",
            json={"schemaType": "AVRO", "schema": json.dumps(schema)},
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
            timeout=10,
        )
        if response.status_code != 200:
            raise SchemaRejected(response.status_code, response.text)
        return int(response.json()["id"])

    def freeze(self) -> None:
        """Make it hang (SIGSTOP): requests are accepted and never answered until `thaw()`."""
        assert self._proc is not None, "not running"
        os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)

    def halt(self) -> None:
        """Stop the process, keeping its database and ports (see `resume`)."""
        if self._proc is not None and self._proc.poll() is None:
            self.thaw()
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(30)
        self._proc = None

    def resume(self, timeout: float = 120) -> None:
        """Start the halted registry again: same ports, same schemas and ids."""
        if self._proc is None:
            self._launch(timeout)

    def stop(self) -> None:
        self.halt()
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    # SIGTERM too: the JVM runs in its own session and would outlive this process.
    signal.signal(signal.SIGTERM, _interrupt)
    with LocalRegistry() as registry:
        print(f"SCHEMA_REGISTRY_URL={registry.url}  (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
