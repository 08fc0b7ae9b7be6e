"""Delay and retry topics -> one adapter -> done | retry topic | dead-letter topic.

One Deliverer per adapter, each with its own consumer group, so every adapter has
its own committed position: one tracker failing or slow never holds back another.

The loop, all on one thread (posts run on the AsyncRunner):
  1. collect finished posts and route their outcomes;
  2. release the deliveries that fell due (each at its own due time, see
     `lookahead`) to posts, at most `max_in_flight` at once, unless the circuit
     breaker is open. Each is checked against its signal's current settings first
     (`consent`): one whose consent was withdrawn, or whose adapter was removed,
     finishes unposted (counted, never retried or dead-lettered); one whose settings
     cannot be read is dead-lettered. For a batch adapter the check is made when a
     delivery joins a batch, at most the adapter's batch age before it is written;
  3. consume: every delivery read waits in the look-ahead buffer until due. The
     buffer holds at most `max_buffered` unfinished deliveries; past that, a record
     read pauses its partition and is read again once there is room;
  4. commit the contiguous finished prefix: routed records and offsets in one
     transaction, then run its effects (alerts). The transaction runs on a thread of
     its own while the loop goes on (`Committing`), one at a time: a loop that waited
     for the broker would hold back every post due meanwhile. Its offsets count as
     committed, and its effects run, only once the broker has confirmed it. One that
     takes longer than `STALLED` (Kafka is in trouble) holds back new posts until it
     is through: an abort means posting again all that was posted since.

The look-ahead buffer holds each record's bytes and due time (`Held`, a few hundred
bytes), not the decoded delivery (about 3.7 KiB): a delivery is decoded when read,
to check it, and again when it falls due.

A crash re-posts what was posted beyond the committed prefix (at most the buffer),
with the same idempotency keys. A delivery due further ahead than `max_ahead` cannot
have come from a valid event: it is dead-lettered (`due_out_of_range`) instead of
being held until then.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from trace_stream import codec
from trace_stream.adapters.base import Adapter, BatchAdapter, Delivered, Outcome, Permanent
from trace_stream.adapters.posting import Poster, Work
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.codec import wire
from trace_stream.codec.wire import dead_letter_record, delivery_record
from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.messages import TP, Message
from trace_stream.core.reasons import Reason
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.core.topics import Topics
from trace_stream.kafka import Consumer, TransactionAborted, TransactionalProducer
from trace_stream.pipeline.consent import UNREADABLE, Decision, Post, Withdrawn
from trace_stream.pipeline.routing import Abandon, Retry, RetryPolicy, route
from trace_stream.state.batching import Batcher
from trace_stream.state.breaker import Breaker
from trace_stream.state.lookahead import InOrder, Lookahead, Timers
from trace_stream.state.offsets import Batch, OffsetTracker
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.logs import Tally
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    """A delivery waiting in the look-ahead buffer: its record's bytes, already
    decoded once and checked, and its due time."""

    due_at: datetime
    raw: bytes

    def delivery(self) -> TraceDelivery:
        return codec.decode_delivery(self.raw)


STALLED = 1.0
"""Seconds after which a transaction under way holds back new posts (a healthy one
takes tens of milliseconds)."""


@dataclass(frozen=True, slots=True)
class Committing:
    """A transaction under way: the finished work it commits, and the batch adapter's
    partitions to release once it is through."""

    done: concurrent.futures.Future[None]
    batch: Batch
    settled: set[TP]
    started: float  # time.monotonic()


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
        consent: Callable[[str, str], Decision] | None = None,
        max_in_flight: int = 64,
        max_buffered: int = 10_000,
        max_ahead: timedelta = timedelta(days=1),
        post_timeout: float = 60,
        commit_interval: float = 0.1,
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
        self._max_ahead = max_ahead
        self._commit_interval = commit_interval
        self._breaker = breaker or Breaker(0, timedelta(0))
        self._consent = consent
        self._tracker = OffsetTracker()
        self._posts = Poster(
            adapter, runner, post_timeout, metrics.post_duration.labels(adapter.name).observe
        )
        self._batcher = (
            Batcher(
                adapter.batch_size,
                adapter.batch_max_age.total_seconds(),
                key=lambda delivery: adapter.batch_key(delivery.trace),
            )
            if isinstance(adapter, BatchAdapter)
            else None
        )
        # Batch files are named after their first offset: they need offset order.
        self._ahead: Lookahead[Held] = Timers() if self._batcher is None else InOrder()
        # A batch adapter needs room for whole batches, one in flight and one filling.
        self._limit = max(
            max_buffered, max_in_flight, 2 * self._batcher.size if self._batcher else 0
        )
        self._paused: set[TP] = set()
        self._committing: Committing | None = None
        self._next: dict[TP, int] = {}  # next offset to read, per partition
        self._positions: dict[TP, int] = {}  # a snapshot of it for the backlog probe
        self._last_commit = 0.0
        self._last_report = 0.0
        self._tally = Tally(log, "posts in the last minute")  # posted, retried
        self._pushed = metrics.pushed.labels(adapter.name)  # once per post: looked up once
        self._lateness = metrics.lateness.labels(adapter.name)

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, shutdown_timeout: float = 20) -> None:
        self._consumer.subscribe([self._topics.delay, *dict.fromkeys(self._topics.retries)])
        try:
            while not stop.is_set():
                self.step()
            self._drain(shutdown_timeout)
            self._posts.forget()  # abandoned, uncommitted: posted again after a restart
        finally:
            self._consumer.close()

    def step(self) -> None:
        self._health.beat(self.stage, self._producer.healthy and self._consumer.reachable())
        self._collect()
        self._release(self._clock())
        self._throttle()
        room = self._limit - self._tracker.unfinished()
        for m in self._consumer.consume(min(500, max(1, room)), self._poll_timeout()):
            self._accept(m)
        now = self._clock()
        self._release(now)
        if self._batcher is not None and not self._stalled():
            ready = self._batcher.ready(time.monotonic())
            self._posts.submit([Work(tp, tuple(items)) for tp, items in ready])
        self._committed()
        if time.monotonic() - self._last_commit >= self._commit_interval:
            self._commit()
        self._report(now)

    def read_positions(self) -> dict[TP, int]:
        """The next offset this deliverer will read, per partition it has read from
        (a snapshot, safe to call from another thread)."""
        return self._positions

    def _poll_timeout(self) -> float:
        """How long consume may block: until a post may finish or a delivery falls due."""
        if self._batcher is None and len(self._posts) >= self._max_in_flight:
            self._posts.wait(0.05, first=True)  # no slot: only a finished post can help
            return 0.0
        now = self._clock()
        cap = 0.05 if self._posts or self._committing else 0.5
        if self._stalled():
            return cap  # nothing may start: look again for the transaction's end
        due = self._ahead.next_due()
        if due is not None:
            due = max(due, self._breaker.closed_at(now) or due)
            cap = min(cap, max(0.0, (due - now).total_seconds()))
        if self._batcher is not None:
            cap = self._batcher.wait_seconds(time.monotonic(), cap)
        return cap

    def _release(self, now: datetime) -> None:
        """Start the posts of the deliveries that are due, as slots allow."""
        if self._breaker.closed_at(now) is not None:
            return  # the breaker is open: due deliveries wait in memory and in Kafka
        if self._stalled():
            return  # Kafka is slow to confirm: posting more would add to an abort's rework
        if self._batcher is not None:
            for tp, offset, held in self._ahead.pop_due(now, len(self._ahead)):
                delivery = held.delivery()
                if self._allowed(tp, offset, delivery):
                    self._batcher.add(tp, offset, delivery, time.monotonic())
            return
        slots = self._max_in_flight - len(self._posts)
        works = []
        for tp, offset, held in self._ahead.pop_due(now, slots):
            delivery = held.delivery()
            if self._allowed(tp, offset, delivery):
                works.append(Work(tp, ((offset, delivery),)))
        self._posts.submit(works)

    def _stalled(self) -> bool:
        """Has the transaction under way taken longer than `STALLED`?"""
        c = self._committing
        return c is not None and time.monotonic() - c.started > STALLED

    def _allowed(self, tp: TP, offset: int, delivery: TraceDelivery) -> bool:
        """Does consent still hold for this post? If not, finish the delivery here."""
        if self._consent is None:
            return True
        decision = self._consent(delivery.trace.signal_id, self.adapter.name)
        if isinstance(decision, Post):
            return True
        ctx = {
            "signal_id": delivery.trace.signal_id,
            "trade_id": delivery.trace.trade_id,
            "adapter": self.adapter.name,
            "attempt": delivery.attempt + 1,
        }
        if isinstance(decision, Withdrawn):
            reason = decision.reason
            log.info("not posted: %s", reason.replace("_", " "), extra=ctx)
            count = self._metrics.withdrawn.labels(self.adapter.name, reason).inc
            self._tracker.finish(tp, offset, [], [count])
            return False
        letter = dead_letter(
            UNREADABLE,
            f"consent cannot be checked: {decision.detail}",
            origin=delivery.origin,
            at=self._clock(),
            adapter=self.adapter.name,
            delivery=delivery.model_copy(update={"adapters": (self.adapter.name,)}),
        )
        log.warning("delivery dead-lettered", extra={**ctx, "reason": letter.reason})
        self._abandon(tp, offset, letter)
        return False

    def _throttle(self) -> None:
        """Resume the partitions paused for lack of room once a tenth of it is free."""
        if self._paused and self._tracker.unfinished() <= self._limit - max(1, self._limit // 10):
            self._consumer.resume(list(self._paused))
            self._paused.clear()

    def _accept(self, m: Message) -> None:
        if m.tp in self._paused:
            return  # fetched past the pause point; read again after the resume
        if self._tracker.unfinished() >= self._limit:
            self._consumer.pause([m.tp])
            self._consumer.seek(m.tp, m.offset)
            self._paused.add(m.tp)
            self._next[m.tp] = m.offset
            log.debug(
                "buffer full, partition paused", extra={"topic": m.topic, "partition": m.partition}
            )
            return
        self._next[m.tp] = m.offset + 1
        targets = wire.targets(m)
        if targets is not None and self.adapter.name not in targets:
            self._tracker.skip(m.tp, m.offset)
            return
        try:
            delivery = codec.decode_delivery(m.value or b"")
        except InvalidEvent as exc:
            self._reject(m, exc.reason, exc.detail)
            return
        if self.adapter.name not in delivery.adapters:
            self._tracker.skip(m.tp, m.offset)
            return
        if delivery.due_at > self._clock() + self._max_ahead:
            self._reject(m, "due_out_of_range", f"due more than {self._max_ahead} ahead")
            return
        self._tracker.start(m.tp, m.offset)
        self._ahead.add(m.tp, m.offset, Held(delivery.due_at, m.value or b""))

    def _reject(self, m: Message, reason: Reason, detail: str) -> None:
        """Dead-letter a record that cannot become a post."""
        source = Origin(topic=m.topic, partition=m.partition, offset=m.offset)
        letter = dead_letter(
            reason, detail, origin=source, at=self._clock(), adapter=self.adapter.name
        )
        log.warning(
            "delivery dead-lettered",
            extra={
                "reason": reason,
                "detail": detail,
                "topic": m.topic,
                "partition": m.partition,
                "offset": m.offset,
            },
        )
        self._tracker.start(m.tp, m.offset)
        self._tracker.finish(
            m.tp,
            m.offset,
            [dead_letter_record(self._topics.dead_letter, letter, source)],
            [lambda: self._metrics.dead_lettered.labels(self.adapter.name, reason).inc()],
        )

    def _report(self, now: datetime) -> None:
        """Twice a second: the due lag of what this deliverer holds, its buffer, and the
        read positions for the backlog probe."""
        if time.monotonic() - self._last_report < 0.5:
            return
        self._last_report = time.monotonic()
        held = [self._ahead.oldest_due(), self._posts.oldest_due()]
        if self._batcher is not None:
            held.append(self._batcher.oldest_due())
        oldest = min((t for t in held if t is not None), default=None)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        self._metrics.report_due_lag(self.adapter.name, "memory", lag)
        self._metrics.buffered.labels(self.adapter.name).set(self._tracker.unfinished())
        self._positions = dict(self._next)
        self._tally.report(adapter=self.adapter.name)

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
            self._pushed.inc()
            self._lateness.observe(max(0.0, (now - delivery.due_at).total_seconds()))
            self._tally.add("posted")
            log.debug("trace posted", extra={**ctx, "due_at": delivery.due_at.isoformat()})
        else:
            self._metrics.failed.labels(name, outcome.reason).inc()
            log.warning(
                "post failed", extra={**ctx, "reason": outcome.reason, "detail": outcome.detail}
            )
        r = route(delivery, name, outcome, policy=self._policy, now=now)
        if isinstance(r, Retry):
            self._tally.add("retried")
            log.debug(
                "retry scheduled",
                extra={**ctx, "retry_topic": r.topic, "due_at": r.delivery.due_at.isoformat()},
            )
            self._tracker.finish(tp, offset, [delivery_record(r.topic, r.delivery)])
        elif isinstance(r, Abandon):
            self._abandon(tp, offset, r.letter)
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

    def _abandon(self, tp: TP, offset: int, letter: DeadLetter) -> None:
        """Finish a delivery as a dead letter; once committed, count it and alert."""
        source = Origin(topic=tp[0], partition=tp[1], offset=offset)
        self._tracker.finish(
            tp,
            offset,
            [dead_letter_record(self._topics.dead_letter, letter, source)],
            [lambda: self._dead_lettered(letter)],
        )

    def _dead_lettered(self, letter: DeadLetter) -> None:
        self._metrics.dead_lettered.labels(self.adapter.name, letter.reason).inc()
        self._alerter.abandoned(letter)

    def _commit(self, tps: list[TP] | None = None) -> None:
        """Start the transaction of the finished prefix (of `tps`), unless one is under
        way."""
        if self._committing is not None:
            return
        self._last_commit = time.monotonic()
        batch = self._tracker.take(tps)
        if not batch:
            return
        settled = self._batcher.take_settled(tps) if self._batcher is not None else set()
        done = self._producer.start_commit(
            batch.records, batch.offsets, self._consumer.group_metadata()
        )
        self._committing = Committing(done, batch, settled, time.monotonic())

    def _committed(self, wait: bool = False) -> None:
        """Once the transaction under way is through (with `wait`, wait for it, within
        the producer's bounds): its offsets are committed, its effects run. Aborted, the
        deliverer rewinds; any other failure is the producer's and stops the stage."""
        committing = self._committing
        if committing is None or not (wait or committing.done.done()):
            return
        self._committing = None
        try:
            committing.done.result()
        except TransactionAborted:
            log.warning("transaction aborted, rewinding", extra={"adapter": self.adapter.name})
            self._rewind()
            return
        self._consumer.mark_committed(committing.batch.offsets)
        if self._batcher is not None:
            self._batcher.release(committing.settled)
        for effect in committing.batch.effects:
            effect()

    def _flush(self, tps: list[TP] | None = None) -> None:
        """Commit what is finished (of `tps`) and wait until it is through."""
        self._committed(wait=True)
        self._commit(tps)
        self._committed(wait=True)

    def _rewind(self) -> None:
        """After an abort: forget everything uncommitted and read it again."""
        self._posts.forget()
        self._tracker.forget()
        if self._batcher is not None:
            self._batcher.forget()
        self._ahead.forget()
        self._consumer.resume(list(self._paused))
        self._paused.clear()
        self._next.clear()
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
        self._ahead.forget(tps)
        if self._batcher is not None:
            self._batcher.forget(tps)
        self._posts.forget(tps)
        paused = self._paused.intersection(tps)
        if paused:
            self._consumer.resume(list(paused))
            self._paused -= paused
        for tp in tps:
            self._next.pop(tp, None)
