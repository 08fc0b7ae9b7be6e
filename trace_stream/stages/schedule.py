"""trade.closed -> delay topic: the first stage.

Each batch of events is planned (decode, opt-in, validate, redact), and the
scheduled deliveries, the dead letters and the consumer offsets are written in one
Kafka transaction: a crash at any point neither loses nor duplicates a record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from trace_stream import codec
from trace_stream.codec.registry import Decoder
from trace_stream.codec.wire import dead_letter_record, delivery_record
from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.messages import Message, OutRecord
from trace_stream.core.reasons import REASONS
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.core.topics import Topics
from trace_stream.kafka import Consumer, TransactionAborted, TransactionalProducer
from trace_stream.pipeline.ingest import DEFAULT_LIMITS, Limits, Schedule, Skip, plan
from trace_stream.pipeline.redact import redacted_json
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.logs import Tally
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

DEAD_LETTER_OUTCOMES = frozenset(r for r, about in REASONS.items() if "schedule" in about.stage)
STAGE = "schedule"


class Scheduler:
    name = STAGE
    watched = True

    def __init__(
        self,
        *,
        consumer_factory: Callable[[Scheduler], Consumer],
        producer: TransactionalProducer,
        topics: Topics,
        enabled_adapters: frozenset[str],
        delay: timedelta,
        clock: Callable[[], datetime],
        metrics: Metrics,
        health: Health,
        decode: Decoder = codec.decode_trade_closed,
        limits: Limits = DEFAULT_LIMITS,
        batch_size: int = 500,
    ) -> None:
        self._consumer = consumer_factory(self)
        self._producer = producer
        self._topics = topics
        self._enabled = enabled_adapters
        self._delay = delay
        self._clock = clock
        self._metrics = metrics
        for outcome in DEAD_LETTER_OUTCOMES:  # at 0 from the start: see Finisher
            metrics.dead_lettered.labels("none", outcome)
        self._health = health
        self._decode = decode
        self._limits = limits
        self._batch_size = batch_size
        self._tally = Tally(log, "events in the last minute")  # per outcome

    def on_assign(self, tps: list[tuple[str, int]]) -> None:
        self._health.joined(STAGE)
        log.info("partitions assigned", extra={"stage": STAGE, "partitions": len(tps)})

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self._topics.input])
        try:
            while not stop.is_set():
                self._health.beat(STAGE, self._producer.healthy and self._consumer.reachable())
                self.step(timeout=0.5)
                self._tally.report(stage=STAGE)
        finally:
            self._consumer.close()

    def step(self, timeout: float) -> int:
        """Consume and route one batch; return how many messages it held."""
        messages = self._consumer.consume(self._batch_size, timeout)
        if not messages:
            return 0
        records: list[OutRecord] = []
        offsets: dict[tuple[str, int], int] = {}
        counts: dict[str, int] = {}
        now = self._clock()  # the batch's time of reading: once, not per event
        for m in messages:
            outcome, out = self._plan(m, now)
            records.extend(out)
            offsets[m.tp] = m.offset + 1
            counts[outcome] = counts.get(outcome, 0) + 1
        try:
            self._producer.commit(records, offsets, self._consumer.group_metadata())
        except TransactionAborted:
            log.warning("transaction aborted, rewinding", extra={"messages": len(messages)})
            self._consumer.rewind()
            return len(messages)
        self._consumer.mark_committed(offsets)
        for outcome, n in counts.items():
            self._tally.add(outcome, n)
            self._metrics.events.labels(outcome).inc(n)
            if outcome in DEAD_LETTER_OUTCOMES:
                self._metrics.dead_lettered.labels("none", outcome).inc(n)
        return len(messages)

    def _plan(self, m: Message, now: datetime) -> tuple[str, list[OutRecord]]:
        """One message -> its outcome and output records. Never raises for a bad record;
        only a DependencyError (the schema registry is down) stops the stage."""
        origin = Origin(topic=m.topic, partition=m.partition, offset=m.offset)
        coords = {"topic": m.topic, "partition": m.partition, "offset": m.offset}
        p = plan(
            m.value,
            origin,
            enabled_adapters=self._enabled,
            delay=self._delay,
            now=now,
            decode=self._decode,
            limits=self._limits,
        )
        if isinstance(p, Schedule):
            return self._schedule(p.delivery, coords)
        if isinstance(p, Skip):
            log.debug("trade skipped", extra={"reason": p.reason, **coords})
            return f"skipped_{p.reason}", []
        return self._dead_letter(p.letter, coords)

    def _schedule(self, d: TraceDelivery, coords: dict[str, Any]) -> tuple[str, list[OutRecord]]:
        try:
            record = delivery_record(self._topics.delay, d)
        except Exception as exc:  # validation let through what Avro cannot hold
            letter = dead_letter(
                "unprocessable",
                f"{type(exc).__name__} while encoding the delivery",
                origin=d.origin,
                at=self._clock(),
                redacted=redacted_json(d.trace.model_dump()),
            )
            return self._dead_letter(letter, coords)
        if log.isEnabledFor(logging.DEBUG):  # its fields cost more than the check
            log.debug(
                "trade scheduled",
                extra={
                    "trade_id": d.trace.trade_id,
                    "adapters": ",".join(d.adapters),
                    "due_at": d.due_at.isoformat(),
                    **coords,
                },
            )
        return "scheduled", [record]

    def _dead_letter(
        self, letter: DeadLetter, coords: dict[str, Any]
    ) -> tuple[str, list[OutRecord]]:
        # `unprocessable`: a rule is missing in ingest.validate, so say it loudly. The
        # detail names the exception type and the step only, never a value.
        level = logging.ERROR if letter.reason == "unprocessable" else logging.WARNING
        log.log(
            level,
            "event dead-lettered",
            extra={"reason": letter.reason, "detail": letter.detail, **coords},
        )
        return letter.reason, [dead_letter_record(self._topics.dead_letter, letter, letter.origin)]
