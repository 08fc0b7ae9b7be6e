"""Several adapters behind one pipeline; file export surviving a crash between the
write and the offset commit. Real broker, real HTTP servers, real files."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devenv.tracker import Reply, Tracker
from tests.support import make_settings, publish, running, trade_event, wait_for
from trace_stream.kafka import TransactionalProducer

ALL = ["webhook", "myfxbook", "file"]


def exported(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted(root.rglob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


@pytest.fixture
def myfxbook() -> Iterator[Tracker]:
    with Tracker(default=Reply(200, b'{"error": false, "message": "ok"}')) as t:
        yield t


@pytest.fixture
def three(
    monkeypatch: pytest.MonkeyPatch, tracker: Tracker, myfxbook: Tracker, tmp_path: Path
) -> Path:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    monkeypatch.setenv("MYFXBOOK_WEBHOOK_URL", f"{myfxbook.url}/mfx")
    monkeypatch.setenv("MYFXBOOK_WEBHOOK_TOKEN", "mfx-token")
    monkeypatch.setenv("FILE_EXPORT_TYPE", "local")
    monkeypatch.setenv("FILE_EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv("FILE_EXPORT_BATCH_SIZE", "7")
    monkeypatch.setenv("FILE_EXPORT_BATCH_MAX_AGE_SECONDS", "0.3")
    return tmp_path / "export"


def test_three_adapters_each_receive_the_trade_and_one_failing_holds_back_none(
    kafka_bootstrap, tracker, myfxbook, three
):
    myfxbook.default = Reply(503)
    settings = make_settings(
        kafka_bootstrap,
        trace_enabled_adapters=",".join(ALL),
        trace_delay_minutes=1 / 60,
        trace_retry_schedule="1s,1s,1s,1s,1s",
    )
    with running(settings) as service:
        wait_for(lambda: service.health.ready()[0], timeout=30, what="every stage assigned")
        closed = datetime.now(UTC)
        trades = [
            trade_event(f"T-{i:02d}", closed_at=closed, tracing_adapters=ALL) for i in range(10)
        ]
        publish(settings, *trades)
        wait_for(lambda: len(tracker.requests(ok=True)) == 10, timeout=20, what="10 webhook posts")
        wait_for(lambda: len(exported(three)) == 10, timeout=20, what="10 exported lines")
        wait_for(lambda: len(myfxbook.requests()) >= 20, timeout=20, what="myfxbook retries")
    due = (closed + timedelta(seconds=1)).timestamp()
    late = [r.at - due for r in tracker.requests()]
    assert min(late) >= 0, "posted before due"
    assert max(late) < 2, "the healthy webhook was held back by the failing tracker"
    assert sorted(r["trade_id"] for r in exported(three)) == [t["trade_id"] for t in trades]
    assert {r.json()["ticket"] for r in myfxbook.requests()} == {t["trade_id"] for t in trades}


def test_myfxbook_posts_each_trade_once_through_the_whole_pipeline(
    kafka_bootstrap, myfxbook, monkeypatch
):
    """trade.closed -> delay topic -> the Myfxbook relay answering as Myfxbook does:
    each trade accepted once, in Myfxbook's shape, with the bearer token, nothing
    personal, nothing dead-lettered."""
    monkeypatch.setenv("MYFXBOOK_WEBHOOK_URL", f"{myfxbook.url}/mfx")
    monkeypatch.setenv("MYFXBOOK_WEBHOOK_TOKEN", "mfx-token")
    settings = make_settings(
        kafka_bootstrap, trace_enabled_adapters="myfxbook", trace_delay_minutes=0
    )
    trades = [trade_event(f"T-{i:02d}", tracing_adapters=["myfxbook"]) for i in range(5)]
    publish(settings, *trades)
    with running(settings) as service:
        pushed = service.metrics.pushed.labels("myfxbook")
        wait_for(lambda: pushed._value.get() == 5, timeout=30, what="5 accepted posts")
    posts = myfxbook.requests()
    assert sorted(r.json()["ticket"] for r in posts) == [t["trade_id"] for t in trades]
    assert {r.headers["Authorization"] for r in posts} == {"Bearer mfx-token"}
    for r, trade in zip(sorted(posts, key=lambda r: r.json()["ticket"]), trades, strict=True):
        body = r.json()
        assert body["signalId"] == trade["signal_id"] and body["symbol"] == trade["instrument"]
        assert not any(str(trade[k]) in r.body.decode() for k in ("user_email", "user_id"))
    assert service.metrics.dead_lettered.labels("myfxbook", "permanent_failure")._value.get() == 0


class CrashBeforeFirstCommit(TransactionalProducer):
    """The file deliverer dies after its adapter wrote a batch, before the offsets commit."""

    crashed = False

    def commit(self, records, offsets, group_metadata) -> None:
        if not CrashBeforeFirstCommit.crashed and ".deliver.file." in self.transactional_id:
            CrashBeforeFirstCommit.crashed = True
            raise RuntimeError("simulated crash between write and commit")
        super().commit(records, offsets, group_metadata)


def test_file_export_crash_between_write_and_commit_leaves_no_duplicate(
    kafka_bootstrap, three, caplog
):
    settings = make_settings(kafka_bootstrap, trace_enabled_adapters="file", trace_delay_minutes=0)
    trades = [trade_event(f"T-{i:03d}", tracing_adapters=["file"]) for i in range(40)]
    publish(settings, *trades)
    with (
        pytest.raises(AssertionError, match="simulated crash"),
        running(settings, producer_factory=CrashBeforeFirstCommit) as s,
    ):
        wait_for(lambda: s.stop.is_set(), timeout=30, what="the simulated crash")
    assert exported(three), "the batch was written before the crash"
    caplog.clear()  # the crash was logged as an error on purpose
    with running(settings):
        wait_for(lambda: len(exported(three)) >= 40, timeout=30, what="every trace exported")
    ids = Counter(r["trade_id"] for r in exported(three))
    assert sorted(ids) == sorted(t["trade_id"] for t in trades)
    assert max(ids.values()) == 1, f"duplicated lines: {[k for k, n in ids.items() if n > 1]}"
