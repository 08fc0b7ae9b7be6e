"""Following a whole topic from its beginning, without a group: for a table that every
replica holds entirely (a compacted topic, like a global table).

Every call that talks to a broker is bounded in wall time; `poll` never blocks longer
than its timeout.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, Message
from trace_stream.kafka.common import (
    MANUAL,
    bounded,
    client_config,
    first_then_rest,
    to_message,
    wrap,
)

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, config: Mapping[str, Any], topic: str, *, fetch_wait_ms: int = 100) -> None:
        self.topic = topic
        self._c = confluent_kafka.Consumer(
            {
                **client_config(config),
                "group.id": "trace-stream-follower",  # never joined: partitions are assigned
                **MANUAL,
                "auto.offset.reset": "earliest",
                # A change on the topic reaches the table within about this long.
                "fetch.wait.max.ms": fetch_wait_ms,
                # The records are applied as they arrive: librdkafka's default read-ahead
                # (up to 64 MiB) would only grow the process while a large table loads.
                "queued.max.messages.kbytes": 4096,
            }
        )
        self._assigned: list[TP] = []

    def partitions(self, timeout: float) -> list[TP] | None:
        """The topic's partitions; None if the topic does not exist."""
        try:
            md = bounded(
                functools.partial(self._c.list_topics, self.topic, timeout=timeout),
                timeout + 2,
                f"metadata of {self.topic}",
            )
        except KafkaException as exc:
            raise wrap(exc, f"metadata of {self.topic}") from None
        topic = md.topics.get(self.topic)
        if topic is None or topic.error is not None:
            if topic is not None and topic.error.code() not in _ABSENT:
                raise KafkaError(f"topic {self.topic}: {topic.error.str()}", topic.error.name())
            return None
        return [(self.topic, p) for p in sorted(topic.partitions)]

    def assign(self, tps: list[TP]) -> None:
        """Read `tps` from their beginning (partitions already assigned keep their place)."""
        new = [tp for tp in tps if tp not in self._assigned]
        if new:
            self._c.incremental_assign(
                [TopicPartition(t, p, confluent_kafka.OFFSET_BEGINNING) for t, p in new]
            )
            self._assigned.extend(new)

    def ends(self, timeout: float) -> dict[TP, tuple[int, int]]:
        """(first offset, offset the next record will get) of each assigned partition
        (with read_committed, the second is the last stable offset)."""
        out = {}
        for t, p in self._assigned:
            call = functools.partial(
                self._c.get_watermark_offsets, TopicPartition(t, p), timeout=timeout
            )
            try:
                marks = bounded(call, timeout + 2, f"end offsets of {t}")
            except KafkaException as exc:
                raise wrap(exc, f"end offsets of {t}") from None
            if marks is None:
                raise KafkaError(f"end offsets of {t}: no answer", "_TIMED_OUT", retriable=True)
            out[(t, p)] = (marks[0], marks[1])
        return out

    def positions(self) -> dict[TP, int]:
        """The next offset to read per assigned partition; -1 before the first fetch."""
        parts = self._c.position([TopicPartition(*tp) for tp in self._assigned])
        return {(p.topic, p.partition): p.offset for p in parts}

    def poll(self, timeout: float, max_messages: int = 500) -> list[Message]:
        """Records read, returning as soon as one has arrived (or after `timeout`)."""
        out = []
        for m in first_then_rest(self._c, max_messages, timeout):
            err = m.error()
            if err is None:
                out.append(to_message(m))
            elif err.fatal():
                raise KafkaError(f"follower: {err.str()}", err.name())
            elif err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                log.warning("follower error", extra={"kafka_error": err.name()})
        return out

    def close(self, timeout: float = 10) -> None:
        try:
            bounded(self._c.close, timeout, "follower close")
        except (KafkaException, KafkaError) as exc:
            log.warning("follower close failed", extra={"error": str(exc)})


_ABSENT = {
    confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART,
    confluent_kafka.KafkaError._UNKNOWN_TOPIC,
}
