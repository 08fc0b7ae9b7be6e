"""The ledger adapter on local disk: built through its entry point, batches append once
per trade, a crash before the checkpoint publishes nothing, writers in several processes
(one SIGKILLed mid-append) never fork or duplicate, and the Go verifier, which we did
not write, accepts what it wrote."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devenv.go_verifier import binary
from tests.support import ROOT
from trace_stream import adapters
from trace_stream.adapters.base import (
    AdapterContext,
    BatchAdapter,
    Delivered,
    Permanent,
    Retriable,
    TraceBatch,
)
from trace_stream.adapters.ledger_store import LocalLogStore
from trace_stream.cli import main
from trace_stream.core.errors import ConfigError
from trace_stream.core.records import Trace
from trace_stream.core.tlog import audit
from trace_stream.core.tlog.note import Signer

from .harness import make_trace, wait_until

SIGNAL = "sig-eurusd-momentum"
KEY = Signer.generate("ledger.example")
ORIGIN = f"ledger.example/{SIGNAL}"


@pytest.fixture
def ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEDGER_DIR", str(tmp_path / "ledger"))
    monkeypatch.setenv("LEDGER_SIGNING_KEY", KEY.secret())
    return tmp_path / "ledger"


def build() -> BatchAdapter:
    async def make() -> BatchAdapter:
        async with httpx.AsyncClient() as http:
            context = AdapterContext("ledger", http, time.time)  # type: ignore[arg-type]
            adapter = adapters.build(["ledger"], lambda _: context)["ledger"]
        assert isinstance(adapter, BatchAdapter)
        return adapter

    return asyncio.run(make())


def deliver(adapter: BatchAdapter, traces: list[Trace], offset: int = 0):
    batch = TraceBatch("trace.delay", 0, offset, tuple(traces))
    return asyncio.run(adapter.deliver_batch(batch))


def verified(root: Path) -> audit.Verified:
    log = root / SIGNAL

    def fetch(path: str) -> bytes | None:
        return (log / path).read_bytes() if (log / path).exists() else None

    return audit.audit(fetch, audit.checkpoint(fetch, KEY.verifier, ORIGIN))


def go_verify(root: Path, old: Path | None = None) -> str:
    argv = [str(binary()), "-key", str(KEY.verifier), "-origin", ORIGIN, "-log", str(root)]
    done = subprocess.run(
        [*argv, *(["-old", str(old)] if old else [])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_batches_append_once_and_the_go_verifier_accepts_the_log(
    ledger_dir: Path, tmp_path: Path
) -> None:
    adapter = build()
    assert adapter.batch_key(make_trace(1)) == SIGNAL
    traces = [make_trace(i) for i in range(700)]
    early = tmp_path / "early-checkpoint"
    for start in range(0, 700, 97):
        assert deliver(adapter, traces[start : start + 97], start) == Delivered()
        if start == 97:
            early.write_bytes((ledger_dir / SIGNAL / "checkpoint").read_bytes())
    published = (ledger_dir / SIGNAL / "checkpoint").read_bytes()
    # Replays, redrives and re-formed batches: nothing is appended twice, no new checkpoint.
    assert deliver(adapter, traces[100:300]) == Delivered()
    assert deliver(build(), traces[650:] + traces[:3]) == Delivered()  # a fresh process
    assert (ledger_dir / SIGNAL / "checkpoint").read_bytes() == published

    v = verified(ledger_dir)
    assert [t.trade_id for t in v.trades] == [t.trade_id for t in traces]
    out = go_verify(ledger_dir / SIGNAL, early)
    assert out.strip() == (
        f"ok: {ORIGIN} size 700, signature and 700 inclusion proofs verified, "
        "consistent with size 194"
    )


def test_a_crash_before_the_checkpoint_publishes_nothing(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = build()
    assert deliver(adapter, [make_trace(i) for i in range(10)]) == Delivered()
    write = LocalLogStore.write

    def crash_at_checkpoint(self: LocalLogStore, log: str, path: str, data: bytes) -> None:
        if path == "checkpoint":
            raise OSError(5, "I/O error")
        write(self, log, path, data)

    monkeypatch.setattr(LocalLogStore, "write", crash_at_checkpoint)
    assert deliver(adapter, [make_trace(i) for i in range(10, 20)]) == Retriable(
        "storage", "OSError EIO"
    )
    assert verified(ledger_dir).checkpoint.size == 10
    monkeypatch.setattr(LocalLogStore, "write", write)
    # The retry is formed differently, and a restarted process has no cache.
    assert deliver(build(), [make_trace(i) for i in range(15, 25)]) == Delivered()
    assert deliver(adapter, [make_trace(i) for i in range(5, 20)]) == Delivered()
    ids = [t.trade_id for t in verified(ledger_dir).trades]
    assert sorted(ids) == [make_trace(i).trade_id for i in range(25)]


def test_a_log_that_does_not_verify_is_never_extended(ledger_dir: Path) -> None:
    adapter = build()
    assert deliver(adapter, [make_trace(i) for i in range(5)]) == Delivered()
    bundle = ledger_dir / SIGNAL / "tile/entries/000.p/5"
    bundle.write_bytes(bundle.read_bytes().replace(b"trade-000003", b"trade-000009"))
    outcome = deliver(build(), [make_trace(7)])
    assert outcome == Permanent("storage", "the published log does not verify")


def test_configuration_is_checked_without_quoting_the_key(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_SIGNING_KEY", KEY.secret()[:-4] + "AAAA")
    with pytest.raises(ConfigError, match="LEDGER_SIGNING_KEY: signing key") as caught:
        build()
    assert KEY.secret()[-20:-4] not in str(caught.value)
    monkeypatch.delenv("LEDGER_SIGNING_KEY")
    with pytest.raises(ConfigError, match="LEDGER_SIGNING_KEY or LEDGER_SIGNING_KEY_FILE"):
        build()
    monkeypatch.setenv("LEDGER_SIGNING_KEY_FILE", str(ledger_dir.parent / "none"))
    with pytest.raises(ConfigError, match="LEDGER_SIGNING_KEY_FILE: cannot read"):
        build()
    assert deliver_rejected(ledger_dir, monkeypatch) == Permanent(
        "rejected", "a signal id that cannot name a log folder"
    )


def deliver_rejected(ledger_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LEDGER_SIGNING_KEY_FILE")
    monkeypatch.setenv("LEDGER_SIGNING_KEY", KEY.secret())
    bad = make_trace(1).model_copy(update={"signal_id": "../etc"})
    return deliver(build(), [bad])


WRITER = """
import asyncio, random, sys, time
from tests.adapters.harness import make_trace
from tests.adapters.test_ledger import build
from trace_stream.adapters.base import Delivered, TraceBatch

seed, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
adapter = build()
order = list(range(count))
rng.shuffle(order)
i = 0
while i < count:
    size = rng.randint(1, 40)
    batch = TraceBatch("trace.delay", seed, i, tuple(make_trace(n) for n in order[i : i + size]))
    if asyncio.run(adapter.deliver_batch(batch)) == Delivered():
        i += size
print("done", flush=True)
"""


def size(root: Path) -> int:
    try:
        return int((root / SIGNAL / "checkpoint").read_text().split("\n")[1])
    except (FileNotFoundError, IndexError):
        return 0


def test_writers_in_three_processes_one_killed_never_fork_nor_duplicate(
    ledger_dir: Path,
) -> None:
    """Every trade is delivered by every writer (as replays and rebalances would), in
    its own order; one writer is SIGKILLed mid-run and started again."""
    count = 1500
    env = {**os.environ, "LEDGER_BATCH_SIZE": "40"}

    def start(seed: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", WRITER, str(seed), str(count)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

    writers = [start(seed) for seed in (1, 2, 3)]
    wait_until(lambda: size(ledger_dir) >= random.randint(100, 300), timeout=60)
    writers[0].send_signal(signal.SIGKILL)
    writers[0].communicate(timeout=30)
    assert writers[0].returncode == -signal.SIGKILL, "the writer ended before the kill"
    writers[0] = start(4)
    for w in writers:
        out, _ = w.communicate(timeout=240)
        assert w.returncode == 0
        assert out.strip() == "done"
    ids = [t.trade_id for t in verified(ledger_dir).trades]
    assert len(ids) == len(set(ids)) == count
    go_verify(ledger_dir / SIGNAL)


@pytest.fixture
def s3_ledger(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[tuple[Any, str]]:
    """A bucket on the loopback S3 endpoint, the adapter configured for it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LEDGER_TYPE": "s3",
        "LEDGER_S3_BUCKET": (bucket := f"ledger-{uuid.uuid4().hex[:12]}"),
        "LEDGER_S3_PREFIX": "logs/",
        "S3_ENDPOINT_URL": moto_url,
        "LEDGER_SIGNING_KEY": KEY.secret(),
        "LEDGER_TIMEOUT_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_url)
    s3.create_bucket(Bucket=bucket)
    yield s3, bucket
    s3.close()


def test_on_s3_writers_racing_append_each_trade_once_and_verify_reads_it(
    s3_ledger, moto_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, bucket = s3_ledger
    traces = [make_trace(i) for i in range(300)]
    writers = [build(), build()]  # two replicas: separate caches, separate leases

    def run(adapter: BatchAdapter, order: list[Trace]) -> None:
        i = 0
        while i < len(order):
            if deliver(adapter, order[i : i + 25]) == Delivered():
                i += 25

    threads = [
        threading.Thread(target=run, args=(w, random.Random(n).sample(traces, len(traces))))
        for n, w in enumerate(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"logs/{SIGNAL}/checkpoint" in keys
    assert f"logs/{SIGNAL}/.lock" not in keys  # released
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    capsys.readouterr()
    code = main(["verify", "--key", str(KEY.verifier), "--log", f"s3://{bucket}/logs/{SIGNAL}"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "trades: 300 (all entries)" in out


def test_on_s3_a_dead_writers_lease_holds_the_log_then_is_taken_over(s3_ledger) -> None:
    s3, bucket = s3_ledger
    s3.put_object(Bucket=bucket, Key=f"logs/{SIGNAL}/.lock", Body=b"a writer that died")
    adapter = build()
    assert deliver(adapter, [make_trace(1)]) == Retriable(
        "storage", "the log is leased by another writer"
    )
    time.sleep(4.5)  # the lease: 4 x LEDGER_TIMEOUT_SECONDS
    assert deliver(adapter, [make_trace(1)]) == Delivered()


def test_a_rotation_signs_with_both_keys_and_each_verifies(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = Signer.generate("ledger.example")
    monkeypatch.setenv("LEDGER_SIGNING_KEY", f"{KEY.secret()}\n{new.secret()}\n")
    assert deliver(build(), [make_trace(i) for i in range(3)]) == Delivered()
    signed = (ledger_dir / SIGNAL / "checkpoint").read_bytes()
    assert signed.count("\u2014 ledger.example ".encode()) == 2
    assert verified(ledger_dir).checkpoint.size == 3  # the old key
    done = subprocess.run(
        [
            str(binary()),
            "-key",
            str(new.verifier),
            "-origin",
            ORIGIN,
            "-log",
            str(ledger_dir / SIGNAL),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # the new key, in Go
    monkeypatch.setenv("LEDGER_SIGNING_KEY", f"{KEY.secret()}\n{Signer.generate('other').secret()}")
    with pytest.raises(ConfigError, match="several keys of one name"):
        build()
