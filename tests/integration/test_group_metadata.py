"""A stage's consumer asks librdkafka for its group's metadata once per generation, not
once per transaction: a transaction after a rebalance still carries the new generation,
and the broker would refuse the old one."""

from __future__ import annotations

import uuid

import pytest

from tests.support import make_settings, publish, trade_event, wait_for
from trace_stream.core.messages import TP
from trace_stream.kafka import Consumer, Reader, TransactionAborted, TransactionalProducer


def test_a_transaction_after_a_rebalance_carries_the_new_generation(kafka_bootstrap):
    settings = make_settings(kafka_bootstrap)
    topic = settings.trace_input_topic
    publish(settings, *(trade_event(f"T-{i:03d}") for i in range(20)))
    group = f"{settings.trace_group_id}.metadata"
    config = settings.consumer_config(group, "earliest")
    assignments: list[list[TP]] = []
    first = Consumer(config, on_assign=assignments.append)
    second = Consumer(config)
    producer = TransactionalProducer(settings.kafka_config(), f"metadata-{uuid.uuid4().hex[:8]}")
    reader = Reader(settings.kafka_config())
    try:
        first.subscribe([topic])
        read = wait_for(lambda: first.consume(500, 0.5), what="the first consumer reads")
        before = first.group_metadata()
        assert first.group_metadata() is before, "asked of librdkafka once per generation"

        second.subscribe([topic])  # the group rebalances: both must go on polling
        wait_for(
            lambda: (second.consume(1, 0.2), first.consume(500, 0.2), len(assignments) >= 2)[-1],
            what="the rebalance reaches the first consumer",
        )
        now_owned = assignments[-1]
        assert len(now_owned) == 1, "the two consumers share the two partitions"
        tp = now_owned[0]
        end = max((m.offset + 1 for m in read if m.tp == tp), default=0)

        # The old generation is refused by the broker: the cache must not keep it.
        with pytest.raises(TransactionAborted):
            producer.commit([], {tp: end}, before)
        after = first.group_metadata()
        assert after is not before, "the rebalance dropped the old generation"
        producer.commit([], {tp: end}, after)
        assert reader.committed(group, [tp]) == {tp: end}
    finally:
        for closing in (first.close, second.close, reader.close):
            closing()
