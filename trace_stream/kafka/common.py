"""Types shared by the Kafka clients, and the conversions from confluent_kafka's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import confluent_kafka
from confluent_kafka import KafkaException

from ..errors import KafkaError


def client_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config a client is built with. librdkafka logs to stderr on its own: no
    Python `logger` callback, which librdkafka would call from its own threads, also
    while a client is being garbage collected (a known source of interpreter crashes
    in confluent-kafka-python); we saw one segfault in a test run with it."""
    return dict(config)


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


def placement(r: OutRecord) -> dict[str, Any]:
    extra: dict[str, Any] = {"headers": cast(_KafkaHeaders, r.headers)}
    if r.partition is not None:
        extra["partition"] = r.partition
    return extra


def to_message(m: confluent_kafka.Message) -> Message:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs]
    topic, partition, offset = str(m.topic()), m.partition() or 0, m.offset() or 0
    return Message(topic, partition, offset, m.key(), m.value(), headers)


def wrap(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, confluent_kafka.KafkaError):
        return KafkaError(f"{what}: {err.str()}", err.name(), retriable=err.retriable())
    return KafkaError(f"{what}: {exc}")
