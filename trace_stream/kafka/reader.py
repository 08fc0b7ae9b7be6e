"""Reading partitions by offset, without a group, and a group's committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, Message
from trace_stream.kafka.common import MANUAL, client_config, to_message, wrap


class Reader:
    """Reads partitions by offset without joining a group: for tools (replay, dead-letter
    inspection) and for probing the head of a queue. Never commits."""

    def __init__(self, config: Mapping[str, Any], *, prefetch: int | None = None) -> None:
        """`prefetch`: records to fetch ahead per partition, for a reader that reads only
        a few (the backlog probe). librdkafka's default (up to 100,000 per partition,
        64 MiB in all) suits replay, but made each probe round grow the process by that
        much for a sample of 100 records."""
        self._config = client_config(config)
        self._group_handles: dict[str, confluent_kafka.Consumer] = {}
        limits = (
            {}
            if prefetch is None
            else {"queued.min.messages": prefetch, "queued.max.messages.kbytes": 1024}
        )
        self._c = confluent_kafka.Consumer(
            {
                **client_config(config),
                "group.id": "trace-stream-reader",
                **MANUAL,
                **limits,
            }
        )

    def partitions(self, topic: str, timeout: float = 10) -> list[TP]:
        try:
            md = self._c.list_topics(topic, timeout=timeout).topics[topic]
        except KafkaException as exc:
            raise wrap(exc, f"list partitions of {topic}") from None
        if md.error is not None:
            raise KafkaError(f"topic {topic}: {md.error.str()}", md.error.name())
        return [(topic, p) for p in sorted(md.partitions)]

    def watermarks(self, tps: Sequence[TP], timeout: float = 10) -> dict[TP, tuple[int, int]]:
        """(low, high) of each partition; high is the offset the next record will get."""
        return {
            tp: self._c.get_watermark_offsets(TopicPartition(*tp), timeout=timeout) for tp in tps
        }

    def committed(self, group: str, tps: Sequence[TP], timeout: float = 10) -> dict[TP, int]:
        """The group's committed offset per partition; -1 where it has none.

        Asked through a consumer handle of that group that never joins it, not through
        AdminClient.list_consumer_group_offsets: librdkafka 2.x (as bundled with
        confluent-kafka 2.16) dereferences a consumer-group handle an admin client does
        not have when the OffsetFetch answer carries a coordinator error, such as
        "load in progress" on a freshly started broker, and the process segfaults
        (seen here, core dump: rd_kafka_handle_OffsetFetch -> rd_kafka_cgrp_op).
        """
        if group not in self._group_handles:
            self._group_handles[group] = confluent_kafka.Consumer(
                {**self._config, "group.id": group, "enable.auto.commit": False}
            )
        try:
            parts = self._group_handles[group].committed(
                [TopicPartition(*tp) for tp in tps], timeout=timeout
            )
        except KafkaException as exc:
            raise wrap(exc, f"committed offsets of {group}") from None
        return {(p.topic, p.partition): p.offset if p.offset >= 0 else -1 for p in parts}

    def offsets_for_time(self, tps: Sequence[TP], ms: int, timeout: float = 10) -> dict[TP, int]:
        """The first offset at or after `ms` (epoch milliseconds) per partition; the end
        offset where no record is that late."""
        asked = [TopicPartition(t, p, ms) for t, p in tps]
        try:
            found = self._c.offsets_for_times(asked, timeout=timeout)
        except KafkaException as exc:
            raise wrap(exc, "offsets for time") from None
        marks = self.watermarks(tps, timeout)
        return {
            (f.topic, f.partition): f.offset if f.offset >= 0 else marks[(f.topic, f.partition)][1]
            for f in found
        }

    def read(self, ranges: Mapping[TP, tuple[int, int]], timeout: float = 30) -> Iterator[Message]:
        """Records in [start, end) of each partition, in offset order per partition."""
        todo = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if not todo:
            return
        self._c.assign([TopicPartition(t, p, start) for (t, p), (start, _) in todo.items()])
        deadline = time.monotonic() + timeout
        try:
            while todo:
                if time.monotonic() > deadline:
                    raise KafkaError(f"timed out reading {sorted(todo)}")
                for m in self._consume_batch():
                    end = todo.get(m.tp, (0, -1))[1]
                    if m.offset < end:
                        yield m
                        deadline = time.monotonic() + timeout
                    if m.offset >= end - 1:
                        todo.pop(m.tp, None)
                # transaction markers take offsets: a partition is done at its position too
                for p in self._c.position([TopicPartition(*tp) for tp in todo]):
                    tp = (p.topic, p.partition)
                    if tp in todo and p.offset >= todo[tp][1]:
                        todo.pop(tp)
        finally:
            self._c.unassign()

    def _consume_batch(self) -> list[Message]:
        out = []
        for m in self._c.consume(500, 0.2):
            if m.error() is None:
                out.append(to_message(m))
        return out

    def close(self) -> None:
        for handle in self._group_handles.values():
            handle.close()
        self._c.close()
