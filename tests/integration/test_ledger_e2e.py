"""The ledger through the real broker: trade.closed -> delay -> ledger, one verified log
per signal with each trade once, across a crash between the append and the offset
commit, and across two replicas, one SIGKILLed mid-stream; the Go verifier accepts
every log."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devenv.go_verifier import binary
from tests.support import (
    Process,
    env_for,
    make_settings,
    publish,
    running,
    trade_event,
    wait_for,
)
from trace_stream.core import audit
from trace_stream.core.note import Signer
from trace_stream.kafka import TransactionalProducer

KEY = Signer.generate("ledger.test")
SIGNALS = ("SIG-A", "SIG-B", "SIG-C")


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "ledger"
    monkeypatch.setenv("LEDGER_DIR", str(root))
    monkeypatch.setenv("LEDGER_SIGNING_KEY", KEY.secret())
    monkeypatch.setenv("LEDGER_BATCH_SIZE", "7")
    monkeypatch.setenv("LEDGER_BATCH_MAX_AGE_SECONDS", "0.3")
    return root


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


def size(root: Path, signal: str) -> int:
    try:
        return int((root / signal / "checkpoint").read_text().split("\n")[1])
    except (FileNotFoundError, IndexError):
        return 0


def logged(root: Path) -> dict[str, list[str]]:
    """Signal -> trade ids of its log, each log fully audited, and checked in Go."""
    out = {}
    for signal in SIGNALS:
        folder = root / signal

        def fetch(path: str, folder: Path = folder) -> bytes | None:
            return (folder / path).read_bytes() if (folder / path).exists() else None

        origin = f"ledger.test/{signal}"
        v = audit.audit(fetch, audit.checkpoint(fetch, KEY.verifier, origin))
        out[signal] = [t.trade_id for t in v.trades]
        argv = [str(binary()), "-key", str(KEY.verifier), "-origin", origin, "-log", str(folder)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    return out


def assert_each_once(root: Path, sent: list[dict[str, object]]) -> None:
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


def test_crash_between_append_and_commit_appends_nothing_twice(kafka_bootstrap, ledger, caplog):
    settings = make_settings(
        kafka_bootstrap, trace_enabled_adapters="ledger", trace_delay_minutes=0
    )
    sent = trades(60)
    publish(settings, *sent)
    with (
        pytest.raises(AssertionError, match="simulated crash"),
        running(settings, producer_factory=CrashBeforeFirstCommit) as s,
    ):
        wait_for(lambda: s.stop.is_set(), timeout=30, what="the simulated crash")
    assert sum(size(ledger, s) for s in SIGNALS) > 0, "a batch was appended before the crash"
    caplog.clear()  # the crash was logged as an error on purpose
    with running(settings):
        wait_for(lambda: sum(size(ledger, s) for s in SIGNALS) >= 60, timeout=60, what="all")
    assert_each_once(ledger, sent)


def test_two_replicas_one_sigkilled_leave_each_log_whole(kafka_bootstrap, ledger, tmp_path):
    settings = make_settings(
        kafka_bootstrap,
        trace_enabled_adapters="ledger",
        trace_delay_minutes=0,
        trace_topic_partitions=4,
    )
    second = settings.model_copy(update={"trace_instance_id": settings.trace_instance_id + "-b"})
    extra = {k: str(v) for k, v in ledger_env(ledger).items()}
    sent = trades(300)
    publish(settings, *sent[:150])
    a = Process(env_for(settings, **extra), tmp_path / "a.log")
    b = Process(env_for(second, **extra), tmp_path / "b.log")

    def total() -> int:
        return sum(size(ledger, s) for s in SIGNALS)

    try:
        wait_for(lambda: total() >= 30, timeout=90, what="both replicas appending")
        publish(settings, *sent[150:])
        a.kill()  # mid-stream: its partitions move to b, its last batches are redelivered
        assert total() < 300, "the kill came too late to test anything"
        a.close()
        a = Process(env_for(settings, **extra), tmp_path / "a.log")
        wait_for(lambda: total() >= 300, timeout=120, what="every trade in its log")
        assert a.terminate() == 0
        assert b.terminate() == 0
    finally:
        a.close()
        b.close()
    assert_each_once(ledger, sent)


def ledger_env(root: Path) -> dict[str, object]:
    return {
        "LEDGER_DIR": root,
        "LEDGER_SIGNING_KEY": KEY.secret(),
        "LEDGER_BATCH_SIZE": 7,
        "LEDGER_BATCH_MAX_AGE_SECONDS": 0.3,
    }
