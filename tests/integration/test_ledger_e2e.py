"""The ledger through the real broker: trade.closed -> delay -> ledger, one verified log
per signal with each trade once, across a crash between the append and the offset
commit, and across two replicas, one SIGKILLed mid-stream, on local disk and on a real
S3 endpoint on loopback (moto's server); the Go verifier accepts every log."""

from __future__ import annotations

import http.client
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devenv.broker import free_port
from devenv.go_verifier import binary
from tests.support import (
    Process,
    env_for,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream.core.tlog import audit
from trace_stream.core.tlog.audit import Fetch
from trace_stream.core.tlog.note import Signer
from trace_stream.core.topics import layout
from trace_stream.kafka import TransactionalProducer
from trace_stream.ops.log_reader import fetcher

KEY = Signer.generate("ledger.test")
SIGNALS = ("SIG-A", "SIG-B", "SIG-C")


class Ledger:
    """Where the service writes its logs (`env`), and how a test reads them back."""

    def __init__(self, env: dict[str, str], location: str, download: Path) -> None:
        self.env, self._location, self._download = env, location, download
        self._s3: dict[str, Fetch] = {}

    def fetch(self, signal: str, path: str) -> bytes | None:
        if self._location.startswith("s3://"):
            # One S3 client per log for the whole test: `total` polls every 50 ms, and a
            # client built per read cost enough CPU, in the process the service runs in,
            # to push its 2 s appends past their deadline on a loaded machine.
            if signal not in self._s3:
                self._s3[signal] = fetcher(f"{self._location}/{signal}")
            return self._s3[signal](path)
        file = Path(self._location) / signal / path
        return file.read_bytes() if file.exists() else None

    def folder(self, signal: str) -> Path:
        """A local copy of the log (the log itself on disk), for the Go verifier."""
        if not self._location.startswith("s3://"):
            return Path(self._location) / signal
        bucket, _, prefix = self._location.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{signal}/")
        for o in listed.get("Contents", []):
            target = self._download / o["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        s3.close()
        return self._download / prefix / signal


def _answers(port: int) -> bool:
    """Does an HTTP server answer on the port (whatever its status)?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's S3 server in a process of its own. In this process (ThreadedMotoServer)
    it took turns at the GIL with the service these tests run in-process: S3 calls
    took 0.5 to 1 s each on a loaded machine, appends ran past their timeout again and
    again, and a fresh-clone CI run timed out waiting for them."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.poll() is not None or _answers(port), 30, "moto's S3 server")
        assert server.poll() is None, f"moto's S3 server exited {server.returncode}"
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


@pytest.fixture(params=["local", "s3"])
def ledger(request, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Ledger:
    env = {
        "LEDGER_SIGNING_KEY": KEY.secret(),
        "LEDGER_BATCH_SIZE": "7",
        "LEDGER_BATCH_MAX_AGE_SECONDS": "0.3",
        # A SIGKILLed writer's S3 lease holds its logs for 4 x this: 8 s.
        "LEDGER_TIMEOUT_SECONDS": "2",
    }
    if request.param == "local":
        env |= {"LEDGER_TYPE": "local", "LEDGER_DIR": str(tmp_path / "ledger")}
        location = str(tmp_path / "ledger")
    else:
        url, bucket = request.getfixturevalue("moto"), f"ledger-{uuid.uuid4().hex[:12]}"
        env |= {
            "LEDGER_TYPE": "s3",
            "LEDGER_S3_BUCKET": bucket,
            "LEDGER_S3_PREFIX": "logs/",
            "S3_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        location = f"s3://{bucket}/logs"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if request.param == "s3":
        boto3.client("s3").create_bucket(Bucket=env["LEDGER_S3_BUCKET"])
    return Ledger(env, location, tmp_path / "download")


def trades(count: int) -> list[dict[str, object]]:
    return [
        trade_event(
            f"T-{i:03d}",
            signal_id=SIGNALS[i % len(SIGNALS)],
            profit_loss=float(i % 9 - 4),
            tracing_adapters=["ledger"],
        )
        for i in range(count)
    ]


def total(ledger: Ledger) -> int:
    sizes = (ledger.fetch(s, "checkpoint") for s in SIGNALS)
    return sum(int(c.split(b"\n")[1]) for c in sizes if c)


def logged(ledger: Ledger) -> dict[str, list[str]]:
    """Signal -> trade ids of its log, each log fully audited, and checked in Go."""
    out = {}
    for signal in SIGNALS:

        def fetch(path: str, signal: str = signal) -> bytes | None:
            return ledger.fetch(signal, path)

        origin = f"ledger.test/{signal}"
        v = audit.audit(fetch, audit.checkpoint(fetch, KEY.verifier, origin))
        out[signal] = [t.trade_id for t in v.trades]
        folder = ledger.folder(signal)
        argv = [str(binary()), "-key", str(KEY.verifier), "-origin", origin, "-log", str(folder)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return out


def assert_each_once(root: Ledger, sent: list[dict[str, object]]) -> None:
    logs = logged(root)
    for signal, ids in logs.items():
        assert len(ids) == len(set(ids)), f"{signal}: a trade appended twice"
        assert sorted(ids) == sorted(str(t["trade_id"]) for t in sent if t["signal_id"] == signal)


class CrashBeforeFirstCommit(TransactionalProducer):
    """The ledger deliverer dies after appending a batch, before the offsets commit."""

    crashed = False

    def commit(self, records, offsets, group_metadata) -> None:
        if not CrashBeforeFirstCommit.crashed and ".deliver.ledger." in self.transactional_id:
            CrashBeforeFirstCommit.crashed = True
            raise RuntimeError("simulated crash between append and commit")
        super().commit(records, offsets, group_metadata)


def test_crash_between_append_and_commit_appends_nothing_twice(
    kafka_bootstrap, ledger, caplog, monkeypatch
):
    # Nothing is killed here, so no lease outlives its writer: an append may take the
    # time a loaded machine needs. (The fixture's 2 s is for the two-replica test, whose
    # killed replica's lease is 4 x that.) In fresh-clone CI runs the in-process
    # service's 2 s appends timed out again and again on S3 and never caught up.
    monkeypatch.setenv("LEDGER_TIMEOUT_SECONDS", "10")
    settings = make_settings(
        kafka_bootstrap,
        trace_enabled_adapters="ledger",
        trace_delay_minutes=0,
        # A 2 s append (LEDGER_TIMEOUT_SECONDS) that times out on a loaded machine is
        # retried; the default ladder of these tests (3 s in all) could dead-letter it.
        trace_retry_schedule="1s,2s,4s,8s,8s",
    )
    sent = trades(60)
    publish(settings, *sent)
    CrashBeforeFirstCommit.crashed = False
    with (
        pytest.raises(AssertionError, match="simulated crash"),
        running(settings, producer_factory=CrashBeforeFirstCommit) as s,
    ):
        wait_for(lambda: s.stop.is_set(), timeout=30, what="the simulated crash")
    assert total(ledger) > 0, "a batch was appended before the crash"
    caplog.clear()  # the crash was logged as an error on purpose
    with running(settings):
        wait_for(lambda: total(ledger) >= 60, timeout=120, what="all")
    assert_each_once(ledger, sent)
    assert read_topics(settings, layout(settings).dead_letter) == [], "a trade dead-lettered"


def test_two_replicas_one_sigkilled_leave_each_log_whole(kafka_bootstrap, ledger, tmp_path):
    settings = make_settings(
        kafka_bootstrap,
        trace_enabled_adapters="ledger",
        trace_delay_minutes=0,
        trace_topic_partitions=4,
        # The ladder outlasts a lease the killed replica may hold (4 x
        # LEDGER_TIMEOUT_SECONDS = 8 s on S3), as the default ladder (5s ... 1h) outlasts
        # the default lease (120 s): a held log is retried, never dead-lettered.
        trace_retry_schedule="1s,2s,4s,8s,8s",
    )
    second = settings.model_copy(update={"trace_instance_id": settings.trace_instance_id + "-b"})
    extra = ledger.env
    sent = trades(300)
    publish(settings, *sent[:150])
    a = Process(env_for(settings, **extra), tmp_path / "a.log")
    b = Process(env_for(second, **extra), tmp_path / "b.log")
    try:
        wait_for(lambda: total(ledger) >= 30, timeout=90, what="both replicas appending")
        publish(settings, *sent[150:])
        a.kill()  # mid-stream: its partitions move to b, its last batches are redelivered
        assert total(ledger) < 300, "the kill came too late to test anything"
        a.close()
        a = Process(env_for(settings, **extra), tmp_path / "a.log")
        wait_for(lambda: total(ledger) >= 300, timeout=180, what="every trade in its log")
        assert a.terminate() == 0
        assert b.terminate() == 0
    finally:
        a.close()
        b.close()
    assert_each_once(ledger, sent)
    assert read_topics(settings, layout(settings).dead_letter) == [], "a trade dead-lettered"
