"""Producers: the transactional one of the data path, and a plain one for tools."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from ..errors import KafkaError
from .common import TP, OutRecord, TransactionAborted, client_config, placement, wrap

log = logging.getLogger(__name__)


class TransactionalProducer:
    """Produces records and the consumer's offsets in one transaction."""

    def __init__(self, config: Mapping[str, Any], transactional_id: str) -> None:
        self.transactional_id = transactional_id
        self._p = confluent_kafka.Producer(
            client_config({**config, "transactional.id": transactional_id, "linger.ms": 5})
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
            raise wrap(exc, "transaction") from None

    def _produce(self, r: OutRecord) -> None:
        while True:
            try:
                self._p.produce(r.topic, r.value, r.key, **placement(r))
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
        self._p = confluent_kafka.Producer(client_config({**config, "enable.idempotence": True}))

    def produce(self, r: OutRecord) -> None:
        while True:
            try:
                self._p.produce(r.topic, r.value, r.key, **placement(r))
                break
            except BufferError:  # the local queue is full: let deliveries drain
                self._p.poll(0.1)
        self._p.poll(0)

    def flush(self, timeout: float = 30) -> None:
        if self._p.flush(timeout):
            raise KafkaError("producer: messages still queued after flush")
