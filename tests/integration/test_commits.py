"""The deliverer's transactions run beside its loop: a transaction the broker is slow
to confirm holds back no post, and nothing counts as committed before it is through.
Real broker, real HTTP server; the only thing changed is when a deliverer's commit may
proceed."""

from __future__ import annotations

import threading
from typing import Any

from devenv.tracker import Tracker
from tests.support import make_settings, publish, read_topics, running, trade_event, wait_for
from trace_stream.kafka import Reader, TransactionalProducer
from trace_stream.topics import layout

N = 400
"""More than the posts in flight (64) and than one flush interval can post: a loop that
waited for its first transaction would stop short of N."""


class GatedDeliveryCommits(TransactionalProducer):
    """A deliverer's transactions wait until the test opens the gate, as they would for a
    broker slow to confirm them; stage 1's go through as usual."""

    gate = threading.Event()

    def commit(self, records: Any, offsets: Any, group_metadata: Any) -> None:
        if ".deliver." in self.transactional_id:
            assert GatedDeliveryCommits.gate.wait(60), "the test never opened the gate"
        super().commit(records, offsets, group_metadata)


def test_posts_go_on_while_a_transaction_waits_and_offsets_follow_it(
    kafka_bootstrap, tracker: Tracker, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_ENDPOINT", f"{tracker.url}/traces")
    settings = make_settings(kafka_bootstrap, trace_enabled_adapters="webhook")
    delay_topic = layout(settings).delay
    group = f"{settings.trace_group_id}.deliver.webhook"
    reader = Reader(settings.kafka_config())
    GatedDeliveryCommits.gate = gate = threading.Event()
    try:
        with running(settings, producer_factory=GatedDeliveryCommits) as service:
            wait_for(lambda: service.health.ready()[0], timeout=30, what="every stage assigned")
            try:
                publish(settings, *(trade_event(f"T-{i:03d}") for i in range(N)))
                wait_for(
                    lambda: len(tracker.requests(ok=True)) == N,
                    timeout=60,
                    what=f"all {N} posts while the deliverer's first transaction waits",
                )
                tps = reader.partitions(delay_topic)
                assert set(reader.committed(group, tps).values()) == {-1}, (
                    "offsets counted as committed before their transaction went through"
                )
            finally:
                gate.set()
            ends: dict[tuple[str, int], int] = {}
            for m in read_topics(settings, delay_topic):
                tp = (m.topic(), m.partition())
                ends[tp] = max(ends.get(tp, 0), m.offset() + 1)
            wait_for(
                lambda: all(reader.committed(group, tps)[tp] >= end for tp, end in ends.items()),
                timeout=30,
                what="the deliverer's offsets committed once its transactions go through",
            )
    finally:
        reader.close()
    keys = [r.headers["idempotency-key"] for r in tracker.requests()]
    assert len(keys) == len(set(keys)) == N, "a trade was posted more than once"
