"""The deliverer's transactions run beside its loop: a transaction the broker is slow
to confirm holds back no post, one that stalls (Kafka in trouble) holds back new
posts, and nothing counts as committed before its transaction is through.
Real broker, real HTTP server; the only thing changed is when a deliverer's commit may
proceed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devenv.tracker import Tracker
from tests.support import make_settings, publish, read_topics, running, trade_event, wait_for
from trace_stream.adapters.posting import Poster, Work
from trace_stream.core.topics import layout
from trace_stream.kafka import Reader, TransactionalProducer
from trace_stream.settings import Settings
from trace_stream.state import commits


class GatedDeliveryCommits(TransactionalProducer):
    """A deliverer's transactions wait until the test opens the gate, as they would for a
    broker slow to confirm them; stage 1's go through as usual."""

    gate = threading.Event()
    waiting_since: float | None = None  # time.monotonic() when the first one began waiting

    def commit(self, records: Any, offsets: Any, group_metadata: Any) -> None:
        if ".deliver." in self.transactional_id:
            cls = GatedDeliveryCommits
            cls.waiting_since = cls.waiting_since or time.monotonic()
            assert cls.gate.wait(90), "the test never opened the gate"
        super().commit(records, offsets, group_metadata)


@contextmanager
def gated(settings: Settings, n: int) -> Iterator[None]:
    """The service with its deliverer's transactions held at the gate, `n` trades due
    now; on leaving, the gate is open and the deliverer's offsets cover every delivery,
    each trade posted exactly once."""
    reader = Reader(settings.kafka_config())
    GatedDeliveryCommits.gate = gate = threading.Event()
    GatedDeliveryCommits.waiting_since = None
    delay_topic = layout(settings).delay
    group = f"{settings.trace_group_id}.deliver.webhook"
    try:
        with running(settings, producer_factory=GatedDeliveryCommits) as service:
            wait_for(lambda: service.health.ready()[0], timeout=30, what="every stage assigned")
            try:
                publish(settings, *(trade_event(f"T-{i:05d}") for i in range(n)))
                yield
                tps = reader.partitions(delay_topic)
                assert set(reader.committed(group, tps).values()) == {-1}, (
                    "offsets counted as committed before their transaction went through"
                )
            finally:
                gate.set()
            ends: dict[tuple[str, int], int] = {}
            for m in read_topics(settings, delay_topic, timeout=30):
                tp = (str(m.topic()), m.partition() or 0)
                ends[tp] = max(ends.get(tp, 0), (m.offset() or 0) + 1)
            assert sum(ends.values()) >= n
            wait_for(
                lambda: all(reader.committed(group, tps)[tp] >= end for tp, end in ends.items()),
                timeout=60,
                what="the deliverer's offsets committed once its transactions go through",
            )
    finally:
        reader.close()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """(time.monotonic(), how many) for every post the deliverer starts: what the hold
    is about, seen where it happens (a tracker sees a post later, after any reconnect)."""
    seen: list[tuple[float, int]] = []
    submit = Poster.submit

    def spy(self: Poster, works: list[Work]) -> None:
        if works:
            seen.append((time.monotonic(), len(works)))
        submit(self, works)

    monkeypatch.setattr(Poster, "submit", spy)
    return seen


@pytest.fixture
def settings(kafka_bootstrap: str, tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    return make_settings(kafka_bootstrap, trace_enabled_adapters="webhook")


def loop_cpu_seconds() -> float:
    """CPU time of the webhook deliverer's thread (this process runs the service)."""
    (thread,) = [t for t in threading.enumerate() if t.name == "deliver.webhook"]
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def posted(tracker: Tracker) -> int:
    return len({r.headers["idempotency-key"] for r in tracker.requests(ok=True)})


def exactly_once(tracker: Tracker, n: int) -> None:
    keys = [r.headers["idempotency-key"] for r in tracker.requests(ok=True)]
    assert len(keys) == len(set(keys)) == n, "a trade was posted more than once, or never"


def test_posts_go_on_while_a_transaction_waits(
    settings: Settings,
    tracker: Tracker,
    starts: list[tuple[float, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More posts than are in flight (64) or fit in one commit interval: a loop that
    waited for its first transaction would stop short of them."""
    monkeypatch.setattr(commits, "STALLED", 120.0)  # the hold is the next test's
    n = 400
    with gated(settings, n):
        wait_for(
            lambda: sum(k for _, k in starts) == n,
            timeout=60,
            what=f"all {n} posts started while the first transaction waits",
        )
    wait_for(lambda: posted(tracker) == n, timeout=60, what=f"all {n} trades posted")
    exactly_once(tracker, n)


def test_a_stalled_transaction_holds_back_new_posts(
    settings: Settings, tracker: Tracker, starts: list[tuple[float, int]]
) -> None:
    """Past `STALLED` seconds, no post starts until the transaction is through; then all
    are posted, once each, and committed."""
    n = 5000  # far more than this machine posts in the seconds the test watches

    with gated(settings, n):
        since = wait_for(lambda: GatedDeliveryCommits.waiting_since, timeout=60, what="a commit")
        assert since is not None
        # The hold starts STALLED after the transaction did (which is before `since`);
        # allow a loop pass that checked just before that to finish starting its posts.
        hold = since + commits.STALLED + 0.5
        wait_for(lambda: time.monotonic() > hold, timeout=30, what="the hold")
        cpu = loop_cpu_seconds()
        wait_for(lambda: time.monotonic() > hold + 3, timeout=30, what="3 s of the hold")
        cpu = loop_cpu_seconds() - cpu
        assert cpu < 1, f"the deliverer's loop used {cpu:.1f} s of CPU in 3 s: it spins"
        started = sum(k for t, k in starts if t <= hold)
        assert not [t for t, _ in starts if t > hold], "posts started while it stalled"
        assert 0 < started < n
    wait_for(lambda: posted(tracker) == n, timeout=90, what=f"all {n} posts once the gate opens")
    exactly_once(tracker, n)
