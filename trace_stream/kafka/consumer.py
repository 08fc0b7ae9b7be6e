"""A group consumer with manual commits only: offsets go through producer transactions.

It remembers, per assigned partition, the offset it started from and the offsets
committed through it since, so that a rewind after an aborted transaction is a local
seek that needs no broker (the broker may be what failed). Closing is bounded in wall
time. `reachable()` tells whether the brokers answer, for readiness.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, Message
from trace_stream.kafka.common import MANUAL, bounded, client_config, first_then_rest, to_message

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
        self._config = {**config, **MANUAL}  # MANUAL wins: exactly-once rests on it
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._c = confluent_kafka.Consumer(client_config(self._config))
        self._start: dict[TP, int] = {}  # the first offset read since assignment
        self._committed: dict[TP, int] = {}  # committed through `mark_committed` since
        self._pending: dict[TP, int] = {}  # rewinds librdkafka refused for now
        self._metadata: Any = None  # the group's, until a rebalance or an abort
        self._down = False  # librdkafka said every broker is down
        self._checked = 0.0

    def subscribe(self, topics: Sequence[str]) -> None:
        def assigned(_: Any, parts: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in parts]
            self._forget(tps)
            self._down = False
            if self._on_assign:
                self._on_assign(tps)

        def revoked(_: Any, parts: list[TopicPartition]) -> None:
            tps = [(p.topic, p.partition) for p in parts]
            if self._on_revoke:
                self._on_revoke(tps)
            self._forget(tps)

        self._c.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to max_messages, returning as soon as one has arrived (or after `timeout`)
        with whatever else is already fetched; partition errors are logged, fatal ones
        raised."""
        self._seek_pending()
        out = []
        for m in first_then_rest(self._c, max_messages, timeout):
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaError(f"consumer: {err.str()}", err.name())
                if err.code() == confluent_kafka.KafkaError._ALL_BROKERS_DOWN:
                    self._down = True
                if err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"kafka_error": err.name()})
                continue
            message = to_message(m)
            if message.tp in self._pending:
                continue  # read before its rewind: read again once the seek is done
            self._start.setdefault(message.tp, message.offset)
            out.append(message)
        if out:
            self._down = False
        return out

    def mark_committed(self, offsets: Mapping[TP, int]) -> None:
        """Offsets (next to read) that a transaction committed for this consumer's group."""
        self._committed.update(offsets)

    def reachable(self, every: float = 2.0) -> bool:
        """False while librdkafka reports every broker down; then a metadata request,
        at most once per `every` seconds and bounded, tells when they answer again."""
        if not self._down or time.monotonic() - self._checked < every:
            return not self._down
        self._checked = time.monotonic()
        try:
            bounded(functools.partial(self._c.list_topics, timeout=1), 2, "metadata")
            self._down = False
        except (KafkaException, KafkaError):
            pass
        return not self._down

    def _forget(self, tps: Iterable[TP]) -> None:
        """Partitions (re)assigned or revoked: a new assignment starts from the committed
        offsets, so nothing is left to rewind for them; the group has a new generation."""
        self._metadata = None
        for tp in tps:
            self._start.pop(tp, None)
            self._committed.pop(tp, None)
            self._pending.pop(tp, None)

    def pause(self, tps: Iterable[TP]) -> None:
        self._c.pause([TopicPartition(t, p) for t, p in tps])

    def resume(self, tps: Iterable[TP]) -> None:
        self._c.resume([TopicPartition(t, p) for t, p in tps])

    def seek(self, tp: TP, offset: int) -> None:
        self._c.seek(TopicPartition(tp[0], tp[1], offset))

    def assignment(self) -> list[TP]:
        return [(p.topic, p.partition) for p in self._c.assignment()]

    def group_metadata(self) -> Any:
        """The group's generation and member id, which a transaction's offset commit
        carries. Asked of librdkafka once per assignment: the call is a round trip to
        librdkafka's main thread (16 us idle, 140 us while it fetches; 2% of the file
        export's GIL samples when asked for every transaction). It changes with a
        rebalance, whose callbacks drop it here, and an abort drops it too (`rewind`):
        the broker checks the generation, so metadata gone stale any other way costs
        one aborted transaction, never a wrong commit."""
        if self._metadata is None:
            self._metadata = self._c.consumer_group_metadata()
        return self._metadata

    def rewind(self) -> None:
        """Seek every partition read since its assignment back to the last offset committed
        for it (after an abort). Local: the committed offsets are the ones this consumer
        started from or committed since, so no broker needs to answer."""
        self._metadata = None  # in case the abort was the broker refusing it
        self._start = {tp: self._committed.get(tp, o) for tp, o in self._start.items()}
        self._pending.update(self._start)
        self._seek_pending()

    def _seek_pending(self) -> None:
        """Seek the partitions still to rewind. librdkafka refuses a seek while a
        partition is between states (a rebalance under way: `_STATE`); such a partition
        stays pending, and its records are dropped until the seek is done or it is
        assigned anew (from the committed offset)."""
        for tp, offset in list(self._pending.items()):
            try:
                self._c.seek(TopicPartition(tp[0], tp[1], offset))
            except KafkaException as exc:
                log.warning("rewind deferred", extra={"partition": tp[1], "error": str(exc)})
                continue
            del self._pending[tp]

    def close(self, timeout: float = 10) -> None:
        """Leave the group (running the revoke callback) within `timeout` seconds; past
        that the client is abandoned, and the group notices at its session timeout."""
        try:
            bounded(self._c.close, timeout, "consumer close")
        except (KafkaException, KafkaError) as exc:
            log.warning("consumer close failed", extra={"error": str(exc)})
