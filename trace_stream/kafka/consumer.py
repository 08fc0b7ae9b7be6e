"""A group consumer with manual commits only: offsets go through producer transactions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from ..errors import KafkaError
from .common import TP, Message, client_config, to_message

log = logging.getLogger(__name__)


class Consumer:
    """A consumer with manual commits only (offsets go through producer transactions)."""

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        on_assign: Callable[[list[TP]], None] | None = None,
        on_revoke: Callable[[list[TP]], None] | None = None,
    ) -> None:
        self._config = {
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            **config,
        }
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._c = confluent_kafka.Consumer(client_config(self._config))

    def subscribe(self, topics: Sequence[str]) -> None:
        def assigned(_: Any, parts: list[TopicPartition]) -> None:
            if self._on_assign:
                self._on_assign([(p.topic, p.partition) for p in parts])

        def revoked(_: Any, parts: list[TopicPartition]) -> None:
            if self._on_revoke:
                self._on_revoke([(p.topic, p.partition) for p in parts])

        self._c.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to max_messages, returning as soon as one has arrived (or after `timeout`)
        with whatever else is already fetched; partition errors are logged, fatal ones
        raised."""
        # librdkafka's batch consume waits for a full batch or the whole timeout, which
        # would add the timeout to every due post: wait for one, then take the rest.
        first = self._c.poll(timeout)
        if first is None:
            return []
        rest = self._c.consume(max_messages - 1, 0) if max_messages > 1 else []
        out = []
        for m in [first, *rest]:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaError(f"consumer: {err.str()}", err.name())
                if err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"kafka_error": err.name()})
                continue
            out.append(to_message(m))
        return out

    def pause(self, tps: Iterable[TP]) -> None:
        self._c.pause([TopicPartition(t, p) for t, p in tps])

    def resume(self, tps: Iterable[TP]) -> None:
        self._c.resume([TopicPartition(t, p) for t, p in tps])

    def seek(self, tp: TP, offset: int) -> None:
        self._c.seek(TopicPartition(tp[0], tp[1], offset))

    def assignment(self) -> list[TP]:
        return [(p.topic, p.partition) for p in self._c.assignment()]

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (after an abort)."""
        parts = self._c.committed(self._c.assignment(), timeout=10)
        reset = (
            confluent_kafka.OFFSET_BEGINNING
            if self._config.get("auto.offset.reset", "earliest") == "earliest"
            else confluent_kafka.OFFSET_END
        )
        for p in parts:
            self._c.seek(TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else reset))

    def close(self) -> None:
        self._c.close()
