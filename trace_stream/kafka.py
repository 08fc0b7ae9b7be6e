"""The only module that imports confluent_kafka: a thin consumer, a transactional
producer and topic administration, in the service's own types.

Clients are built lazily by their owners; constructing a config makes no network call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import confluent_kafka
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from .errors import KafkaError

log = logging.getLogger(__name__)
# librdkafka's own log lines go through Python logging (structured, and quiet in
# tools) instead of raw stderr.
_RDKAFKA_LOG = logging.getLogger("librdkafka")


def _with_logger(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"logger": _RDKAFKA_LOG, **config}


TP = tuple[str, int]
Headers = list[tuple[str, bytes]]
_KafkaHeaders = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)
    partition: int | None = None
    """None: the partitioner picks by key."""


class TransactionAborted(KafkaError):
    """The transaction was aborted; the caller must rewind to the committed offsets."""


def _placement(r: OutRecord) -> dict[str, Any]:
    extra: dict[str, Any] = {"headers": cast(_KafkaHeaders, r.headers)}
    if r.partition is not None:
        extra["partition"] = r.partition
    return extra


def _message(m: confluent_kafka.Message) -> Message:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs]
    topic, partition, offset = str(m.topic()), m.partition() or 0, m.offset() or 0
    return Message(topic, partition, offset, m.key(), m.value(), headers)


def _wrap(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, confluent_kafka.KafkaError):
        return KafkaError(f"{what}: {err.str()}", err.name(), retriable=err.retriable())
    return KafkaError(f"{what}: {exc}")


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
        self._c = confluent_kafka.Consumer(_with_logger(self._config))

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
            out.append(_message(m))
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


class TransactionalProducer:
    """Produces records and the consumer's offsets in one transaction."""

    def __init__(self, config: Mapping[str, Any], transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self._p = confluent_kafka.Producer(
            _with_logger({**config, "transactional.id": transactional_id, "linger.ms": 5})
        )
        self._p.init_transactions(30)

    def commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> None:
        """Atomically produce `records` and commit `offsets` (next offset to read).

        Raises TransactionAborted when the transaction had to be aborted: nothing of it
        is visible, and the caller must rewind. Other KafkaErrors are fatal.
        """
        try:
            self._p.begin_transaction()
            for r in records:
                self._produce(r)
            if offsets:
                parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                self._p.send_offsets_to_transaction(parts, group_metadata, 30)
            self._commit()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, confluent_kafka.KafkaError) and err.txn_requires_abort():
                self._p.abort_transaction(30)
                raise TransactionAborted(f"transaction aborted: {err.str()}", err.name()) from None
            raise _wrap(exc, "transaction") from None

    def _produce(self, r: OutRecord) -> None:
        while True:
            try:
                self._p.produce(r.topic, r.value, r.key, **_placement(r))
                return
            except BufferError:
                self._p.poll(0.1)

    def _commit(self) -> None:
        for _ in range(10):
            try:
                self._p.commit_transaction(30)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if not (isinstance(err, confluent_kafka.KafkaError) and err.retriable()):
                    raise
                log.warning("retrying transaction commit", extra={"kafka_error": err.name()})
        raise KafkaError("transaction commit kept failing with retriable errors")


class Producer:
    """A plain idempotent producer, for tools, demos and tests (not the data path)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._p = confluent_kafka.Producer(_with_logger({**config, "enable.idempotence": True}))

    def produce(self, r: OutRecord) -> None:
        while True:
            try:
                self._p.produce(r.topic, r.value, r.key, **_placement(r))
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self._p.poll(0.1)
        self._p.poll(0)

    def flush(self, timeout: float = 30) -> None:
        if self._p.flush(timeout):
            raise KafkaError("producer: messages still queued after flush")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


class Admin:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._a = AdminClient(_with_logger(config))

    def existing(self, timeout: float = 10) -> dict[str, int]:
        """Topic name -> partition count."""
        try:
            md = self._a.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise _wrap(exc, "list topics") from None
        return {name: len(t.partitions) for name, t in md.topics.items()}

    def create(self, specs: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created."""
        have = self.existing()
        todo = [s for s in specs if s.name not in have]
        if not todo:
            return []
        futures = self._a.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in todo
            ],
            operation_timeout=timeout,
        )
        created = []
        for name, fut in futures.items():
            try:
                fut.result()
                created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise _wrap(exc, f"create topic {name}") from None
        return created

    def describe(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Topic -> its non-default configuration."""
        res = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        out = {}
        for r, fut in self._a.describe_configs(res).items():
            entries = fut.result()
            out[r.name] = {k: e.value for k, e in entries.items() if not e.is_default}
        return out


class Reader:
    """Reads partitions by offset without joining a group: for tools (replay, dead-letter
    inspection) and for probing the head of a queue. Never commits."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._admin = AdminClient(_with_logger(config))
        self._c = confluent_kafka.Consumer(
            {
                **_with_logger(config),
                "group.id": "trace-stream-reader",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
            }
        )

    def partitions(self, topic: str, timeout: float = 10) -> list[TP]:
        try:
            md = self._c.list_topics(topic, timeout=timeout).topics[topic]
        except KafkaException as exc:
            raise _wrap(exc, f"list partitions of {topic}") from None
        if md.error is not None:
            raise KafkaError(f"topic {topic}: {md.error.str()}", md.error.name())
        return [(topic, p) for p in sorted(md.partitions)]

    def watermarks(self, tps: Sequence[TP], timeout: float = 10) -> dict[TP, tuple[int, int]]:
        """(low, high) of each partition; high is the offset the next record will get."""
        return {
            tp: self._c.get_watermark_offsets(TopicPartition(*tp), timeout=timeout) for tp in tps
        }

    def committed(self, group: str, tps: Sequence[TP], timeout: float = 10) -> dict[TP, int]:
        """The group's committed offset per partition; -1 where it has none."""
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(*tp) for tp in tps])]
        try:
            futures = self._admin.list_consumer_group_offsets(request, request_timeout=timeout)
            result = futures[group].result()
        except KafkaException as exc:
            raise _wrap(exc, f"committed offsets of {group}") from None
        return {
            (p.topic, p.partition): p.offset if p.offset >= 0 else -1
            for p in result.topic_partitions
        }

    def offsets_for_time(self, tps: Sequence[TP], ms: int, timeout: float = 10) -> dict[TP, int]:
        """The first offset at or after `ms` (epoch milliseconds) per partition; the end
        offset where no record is that late."""
        asked = [TopicPartition(t, p, ms) for t, p in tps]
        try:
            found = self._c.offsets_for_times(asked, timeout=timeout)
        except KafkaException as exc:
            raise _wrap(exc, "offsets for time") from None
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
                out.append(_message(m))
        return out

    def close(self) -> None:
        self._c.close()
