"""A real single-node Apache Kafka broker in KRaft mode, from Maven Central jars.

`fetch()` asks Maven for the broker's runtime classpath (devenv/kafka/pom.xml) and
copies it into a cache directory outside the repository; `LocalKafka` formats a
fresh log directory in a temp dir and runs the broker with the machine's Java on
free loopback ports.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from confluent_kafka.admin import AdminClient

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
CACHE = Path(os.environ.get("TRACE_STREAM_CACHE", Path.home() / ".cache" / "trace-stream"))


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return CACHE / f"kafka-{version}" / "libs"


def fetch(version: str = KAFKA_VERSION) -> Path:
    """Download the broker's jars once; later calls return the cached directory."""
    libs = libs_dir(version)
    done = libs / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka broker jars")
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not fetch Kafka {version}:\n{result.stdout}{result.stderr}")
    done.touch()
    return libs


def _cluster_id() -> str:
    """A random cluster id. One starting with '-' would be read as an option by the
    storage tool, so those are drawn again (Kafka's own Uuid.randomUuid does the same)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Interrupted(Exception):
    """`start` gave up because its `stop` event was set."""


class LocalKafka:
    """Start with `start()`, stop with `stop()`; `bootstrap` is host:port."""

    def __init__(self, version: str = KAFKA_VERSION, heap: str = "768m") -> None:
        self.version = version
        self.heap = heap
        self.workdir = Path(tempfile.mkdtemp(prefix="trace-stream-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = self.workdir / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._probe: AdminClient | None = None

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.workdir / 'data'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )

    def _java(self, *args: str) -> list[str]:
        classpath = str(fetch(self.version) / "*")
        return ["java", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-cp", classpath, *args]

    def start(self, timeout: float = 90, stop: threading.Event | None = None) -> str:
        """Format, launch and wait until the broker answers; Interrupted as soon as
        `stop` is set (call `stop()` then, as always, to end the broker)."""
        config = self.workdir / "server.properties"
        config.write_text(self._properties())
        cluster_id = _cluster_id()
        fmt = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config))
        subprocess.run(fmt, check=True, capture_output=True)
        if stop is not None and stop.is_set():
            raise Interrupted("stopped before the broker was launched")
        self._log = self.log_path.open("wb")
        self._launch()
        self._wait_ready(timeout, stop)
        return self.bootstrap

    def _launch(self) -> None:
        self._proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.workdir / "server.properties")),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the demo must not stop the broker
            # before the service has shut down against it.
            start_new_session=True,
        )

    def halt(self, timeout: float = 30) -> None:
        """Stop the broker process, keeping its data directory and ports (see `resume`)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)
        self._proc = None

    def resume(self, timeout: float = 90) -> None:
        """Start the halted broker again on the same data directory and ports."""
        if self._proc is not None:
            return
        self._launch()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float, stop: threading.Event | None = None) -> None:
        # log_level 0: the probe's "connection refused" while the JVM starts is expected.
        # Kept until stop(): dropping an admin client right after requests has crashed
        # the interpreter in librdkafka's teardown.
        if self._probe is None:
            self._probe = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        admin = self._probe
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                raise Interrupted("stopped while the broker was starting")
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"Kafka exited early; see {self.log_path}")
            try:
                admin.list_topics(timeout=2)
                return
            except Exception:  # not up yet
                time.sleep(0.3)
        raise TimeoutError(f"Kafka did not start within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


if __name__ == "__main__":
    print(fetch())
