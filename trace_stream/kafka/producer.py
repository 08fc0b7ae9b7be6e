"""Producers: the transactional one of the data path, and a plain one for tools."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException, TopicPartition

from trace_stream.core.backoff import Stopped, backoff
from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, OutRecord
from trace_stream.kafka.common import (
    Stuck,
    TransactionAborted,
    bounded,
    client_config,
    on_thread,
    placement,
    wrap,
)

log = logging.getLogger(__name__)

_MARGIN = 2.0
"""Seconds our wall-time bound allows beyond the timeout given to librdkafka."""
_FENCED = frozenset({"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"})


def _init_again(exc: BaseException) -> bool:
    """A retriable failure of init_transactions, but not Stuck: a client one of whose
    calls never returned is not used again."""
    return isinstance(exc, KafkaError) and exc.retriable and not isinstance(exc, Stuck)


class TransactionalProducer:
    """Produces records and the consumer's offsets in one transaction.

    Every broker call is bounded in wall time (`bounded`). A transaction that fails
    for any reason but fencing is aborted; when the abort fails too (the broker is
    away, or a call never returned), the producer is re-created under the same
    transactional id, which fences the old one and aborts its open transaction. Either
    way the caller gets TransactionAborted and rewinds; recovery is retried with
    backoff.

    `timeout` bounds one transaction (or abort, or init); `recovery` bounds the whole
    recovery. Past it, or when another producer with this transactional id fenced us,
    `commit` raises a fatal KafkaError.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        transactional_id: str,
        *,
        timeout: float = 10,
        recovery: float = 45,
        stop: threading.Event | None = None,
    ) -> None:
        self.transactional_id = transactional_id
        self._config = client_config(
            {**config, "transactional.id": transactional_id, "linger.ms": 5}
        )
        self._timeout = timeout
        self._recovery = recovery
        self._stop = stop or threading.Event()
        self.healthy = True
        """False from a failed transaction until the next one that succeeds."""
        self._p = self._connect(time.monotonic() + recovery)

    def _connect(self, deadline: float) -> confluent_kafka.Producer:
        """A new producer whose transactions are initialised, which fences any earlier
        one with this transactional id. A timed-out init is resumed on the same client
        (a fresh client per attempt would leave pending inits behind that complete later
        and fence the one that succeeded), pausing from 0.5 s doubling to 5 s, until
        `deadline`."""
        producer = confluent_kafka.Producer(self._config)
        what = f"init_transactions of {self.transactional_id}"

        def init() -> None:
            wait = min(self._timeout, max(1.0, deadline - time.monotonic()))
            try:
                bounded(functools.partial(producer.init_transactions, wait), wait + _MARGIN, what)
            except KafkaException as exc:
                raise wrap(exc, what) from None

        retrying = backoff(
            first=0.5, cap=5.0, retry_on=_init_again, stop=self._stop, deadline=deadline
        )
        try:
            retrying(init)
        except Stopped:
            raise KafkaError(f"{what}: stopped while waiting for Kafka") from None
        return producer

    def commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> None:
        """Atomically produce `records` and commit `offsets` (next offset to read).

        Raises TransactionAborted when the transaction had to be aborted: nothing of it
        is visible, and the caller must rewind. Other KafkaErrors are fatal.
        """
        call = functools.partial(self._transact, records, offsets, group_metadata)
        try:
            bounded(call, self._timeout + _MARGIN, f"transaction of {self.transactional_id}")
            self.healthy = True
            return
        except KafkaException as exc:
            failure = wrap(exc, "transaction")
        except KafkaError as exc:
            failure = exc
        self.healthy = False
        if failure.code in _FENCED:
            raise KafkaError(
                f"{self.transactional_id} was fenced by another producer with the same "
                "transactional id: is TRACE_INSTANCE_ID unique per replica?",
                failure.code,
            )
        log.warning(
            "transaction failed, aborting it",
            extra={"kafka_error": failure.code, "detail": str(failure)},
        )
        self._recover(failure)
        raise TransactionAborted(f"transaction aborted: {failure}", failure.code)

    def start_commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> concurrent.futures.Future[None]:
        """`commit` on a thread of its own: the caller goes on while the broker answers,
        and finds commit's outcome (None, or its exception) in the future, which is done
        within commit's own bounds. One transaction at a time: the caller starts the next
        only once this one is done."""
        call = functools.partial(self.commit, records, offsets, group_metadata)
        return on_thread(call, f"commit:{self.transactional_id}")

    def _transact(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> None:
        deadline = time.monotonic() + self._timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        self._p.begin_transaction()
        for r in records:
            self._produce(r, deadline)
        if offsets:
            parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            self._p.send_offsets_to_transaction(parts, group_metadata, left())
        while True:
            try:
                self._p.commit_transaction(left())
                return
            except KafkaException as exc:
                err = exc.args[0]
                retriable = isinstance(err, confluent_kafka.KafkaError) and err.retriable()
                if not retriable or time.monotonic() >= deadline:
                    raise
                log.warning("retrying transaction commit", extra={"kafka_error": err.name()})

    def _produce(self, r: OutRecord, deadline: float) -> None:
        while True:
            try:
                self._p.produce(r.topic, r.value, r.key, **placement(r))
                return
            except BufferError:  # the local queue is full: let deliveries drain
                if time.monotonic() >= deadline:
                    raise KafkaError("producer queue stayed full", "_QUEUE_FULL") from None
                self._p.poll(0.1)

    def _recover(self, failure: KafkaError) -> None:
        """Abort the open transaction, else re-create the producer; with backoff, within
        `recovery` seconds; a fatal KafkaError past that."""
        deadline = time.monotonic() + self._recovery
        abort = functools.partial(self._p.abort_transaction, self._timeout)
        try:
            bounded(abort, self._timeout + _MARGIN, "abort_transaction")
            self.healthy = True
            return
        except (KafkaException, KafkaError) as exc:
            log.warning("abort failed, re-creating the producer", extra={"error": str(exc)})
        try:
            self._p = self._connect(deadline)
            self.healthy = True
            log.info("transactional producer re-created", extra={"id": self.transactional_id})
            return
        except KafkaError as exc:  # Stuck, a fatal error, or the deadline passed
            failure = exc
        if self._stop.is_set():
            return  # stopping: nothing more will be committed through this producer
        raise KafkaError(
            f"Kafka did not recover within {self._recovery:g}s ({failure}): check the "
            "brokers (KAFKA_BOOTSTRAP_SERVERS); exiting so that the service is restarted",
            failure.code,
        )


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
