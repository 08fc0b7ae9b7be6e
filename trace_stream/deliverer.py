"""Delay and retry topics -> one adapter -> done | retry topic | dead-letter topic.

One Deliverer per adapter, each with its own consumer group, so every adapter has
its own committed position: one tracker failing or slow never holds back another.

The loop, all on one thread (posts run on the AsyncRunner):
  1. resume partitions whose held head became due;
  2. collect finished posts and route their outcomes;
  3. consume; a record not yet due pauses its partition and seeks back to it;
     a due record starts a post;
  4. commit the finished prefix: routed records and offsets in one transaction,
     then run its effects (alerts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from . import codec
from .adapters.base import Adapter, BatchAdapter, Delivered, Outcome, Permanent
from .aio import AsyncRunner
from .alerts import Alerter
from .batching import Batcher
from .breaker import Breaker
from .delay import DelayGate
from .errors import InvalidEvent
from .health import Health
from .kafka import TP, Consumer, Message, TransactionAborted, TransactionalProducer
from .metrics import Metrics
from .offsets import OffsetTracker
from .posting import Poster, Work
from .records import DeadLetter, Origin, TraceDelivery
from .routing import Abandon, Retry, RetryPolicy, route
from .scheduler import dead_letter_record, delivery_record
from .topics import Topics

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(
        self,
        *,
        adapter: Adapter | BatchAdapter,
        consumer_factory: Callable[[Deliverer], Consumer],
        producer: TransactionalProducer,
        topics: Topics,
        policy: RetryPolicy,
        runner: AsyncRunner,
        alerter: Alerter,
        metrics: Metrics,
        health: Health,
        clock: Callable[[], datetime],
        breaker: Breaker | None = None,
        max_in_flight: int = 64,
        post_timeout: float = 60,
        flush_interval: float = 0.1,
    ) -> None:
        self.adapter = adapter
        self._consumer = consumer_factory(self)
        self._producer = producer
        self._topics = topics
        self._policy = policy
        self._alerter = alerter
        self._metrics = metrics
        self._health = health
        self.stage = f"deliver.{adapter.name}"
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._flush_interval = flush_interval
        self._gate = DelayGate()
        self._breaker = breaker or Breaker(0, timedelta(0))
        self._tracker = OffsetTracker()
        self._posts = Poster(adapter, runner, metrics, post_timeout)
        self._batcher = (
            Batcher(
                adapter.batch_size,
                adapter.batch_max_age.total_seconds(),
                key=lambda delivery: adapter.batch_key(delivery.trace),
            )
            if isinstance(adapter, BatchAdapter)
            else None
        )
        self._last_flush = 0.0
        # A batch adapter needs room for whole batches, one in flight and one filling.
        self._limit = max(max_in_flight, 2 * self._batcher.size if self._batcher else 0)

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, shutdown_timeout: float = 20) -> None:
        self._consumer.subscribe([self._topics.delay, *dict.fromkeys(self._topics.retries)])
        try:
            while not stop.is_set():
                self.step()
            self._drain(shutdown_timeout)
        finally:
            self._consumer.close()

    def step(self) -> None:
        self._health.beat(self.stage)
        now = self._clock()
        released = self._gate.release_due(now)
        if released:
            log.debug("partitions released", extra={"partitions": released})
            self._consumer.resume(released)
        self._collect()
        room = self._limit - self._tracker.unfinished()
        if room <= 0:
            self._posts.wait(0.1, first=True)
        else:
            cap = 0.05 if self._posts else 0.5
            if self._batcher is not None:
                cap = self._batcher.wait_seconds(time.monotonic(), cap)
            for m in self._consumer.consume(room, self._gate.wait_seconds(now, cap)):
                self._accept(m)
        if self._batcher is not None:
            for tp, items in self._batcher.ready(time.monotonic()):
                self._posts.submit(Work(tp, tuple(items)))
        if time.monotonic() - self._last_flush >= self._flush_interval:
            self._flush()

    def _accept(self, m: Message) -> None:
        if self._gate.is_held(m.tp):
            return  # fetched past a held head; it is read again after the resume
        targets = m.header("trace.adapters")
        if targets is not None and self.adapter.name not in targets.decode().split(","):
            self._tracker.skip(m.tp, m.offset)
            return
        source = Origin(topic=m.topic, partition=m.partition, offset=m.offset)
        try:
            delivery = codec.decode_delivery(m.value or b"")
        except InvalidEvent as exc:
            letter = DeadLetter(
                reason=exc.reason,
                detail=exc.detail,
                adapter=self.adapter.name,
                dead_at=self._clock(),
                origin=source,
            )
            self._tracker.start(m.tp, m.offset)
            self._tracker.finish(
                m.tp, m.offset, [dead_letter_record(self._topics.dead_letter, letter, source)]
            )
            return
        if self.adapter.name not in delivery.adapters:
            self._tracker.skip(m.tp, m.offset)
            return
        now = self._clock()
        wait_until = max(delivery.due_at, self._breaker.closed_at(now) or delivery.due_at)
        if wait_until > now:
            self._consumer.pause([m.tp])
            self._consumer.seek(m.tp, m.offset)
            self._gate.hold(m.tp, wait_until)
            log.debug(
                "partition held",
                extra={
                    "topic": m.topic,
                    "partition": m.partition,
                    "offset": m.offset,
                    "until": wait_until.isoformat(),
                },
            )
            return
        self._tracker.start(m.tp, m.offset)
        if self._batcher is not None:
            self._batcher.add(m.tp, m.offset, delivery, time.monotonic())
        else:
            self._posts.submit(Work(m.tp, ((m.offset, delivery),)))

    def _collect(self) -> None:
        for work, outcome in self._posts.finished():
            for offset, delivery in work.items:
                self._settle(work.tp, offset, delivery, outcome)
            if self._batcher is not None:
                self._batcher.settled(work.tp)

    def _settle(self, tp: TP, offset: int, delivery: TraceDelivery, outcome: Outcome) -> None:
        name = self.adapter.name
        now = self._clock()
        ctx = {
            "trade_id": delivery.trace.trade_id,
            "adapter": name,
            "attempt": delivery.attempt + 1,
            "topic": tp[0],
            "partition": tp[1],
            "offset": offset,
        }
        self._watch(outcome, now)
        if isinstance(outcome, Delivered):
            self._metrics.pushed.labels(name).inc()
            late = (now - delivery.due_at).total_seconds()
            self._metrics.lateness.labels(name).observe(max(0.0, late))
            log.info("trace posted", extra={**ctx, "due_at": delivery.due_at.isoformat()})
        else:
            self._metrics.failed.labels(name, outcome.reason).inc()
            log.warning(
                "post failed", extra={**ctx, "reason": outcome.reason, "detail": outcome.detail}
            )
        r = route(delivery, name, outcome, policy=self._policy, now=now)
        if isinstance(r, Retry):
            log.info(
                "retry scheduled",
                extra={**ctx, "retry_topic": r.topic, "due_at": r.delivery.due_at.isoformat()},
            )
            self._tracker.finish(tp, offset, [delivery_record(r.topic, r.delivery)])
        elif isinstance(r, Abandon):
            source = Origin(topic=tp[0], partition=tp[1], offset=offset)
            letter = r.letter
            self._tracker.finish(
                tp,
                offset,
                [dead_letter_record(self._topics.dead_letter, letter, source)],
                [lambda: self._dead_lettered(letter)],
            )
        else:
            self._tracker.finish(tp, offset)

    def _watch(self, outcome: Outcome, now: datetime) -> None:
        """Feed the circuit breaker; say so loudly when it opens."""
        if isinstance(outcome, Delivered):
            self._breaker.success()
            self._metrics.adapter_paused.labels(self.adapter.name).set(0)
        elif isinstance(outcome, Permanent) and self._breaker.permanent_failure(now):
            until = self._breaker.closed_at(now)
            self._metrics.adapter_paused.labels(self.adapter.name).set(1)
            self._alerter.paused(self.adapter.name, until.isoformat() if until else "")

    def _dead_lettered(self, letter: DeadLetter) -> None:
        self._metrics.dead_lettered.labels(self.adapter.name, letter.reason).inc()
        self._alerter.abandoned(letter)

    def _flush(self, tps: list[TP] | None = None) -> None:
        self._last_flush = time.monotonic()
        settled = self._batcher.take_settled(tps) if self._batcher is not None else set()
        batch = self._tracker.take(tps)
        if not batch:
            return
        try:
            self._producer.commit(batch.records, batch.offsets, self._consumer.group_metadata())
        except TransactionAborted:
            log.warning("transaction aborted, rewinding", extra={"adapter": self.adapter.name})
            self._rewind()
            return
        if self._batcher is not None:
            self._batcher.release(settled)
        for effect in batch.effects:
            effect()

    def _rewind(self) -> None:
        """After an abort: forget everything uncommitted and read it again."""
        self._posts.forget()
        self._tracker.forget()
        if self._batcher is not None:
            self._batcher.forget()
        self._consumer.resume(list(self._gate.held()))
        self._gate.forget(list(self._gate.held()))
        self._consumer.rewind()

    def _drain(self, timeout: float, tps: list[TP] | None = None) -> None:
        """Wait (bounded) for in-flight posts, then commit what finished."""
        self._posts.wait(timeout, tps)
        self._collect()
        self._flush(tps)

    # -- rebalance callbacks (run inside consume) -----------------------------------

    def on_assign(self, tps: list[TP]) -> None:
        self._health.joined(self.stage)
        log.info(
            "partitions assigned", extra={"adapter": self.adapter.name, "partitions": len(tps)}
        )

    def on_revoke(self, tps: list[TP]) -> None:
        """Finish and commit the revoked partitions' work, then forget their state, so a
        rebalance alone never posts a record twice."""
        self._drain(timeout=10, tps=tps)
        self._tracker.forget(tps)
        self._gate.forget(tps)
        if self._batcher is not None:
            self._batcher.forget(tps)
        self._posts.forget(tps)
