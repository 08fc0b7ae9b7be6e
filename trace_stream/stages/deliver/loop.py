"""The deliver stage's loop: read, hold until due, post, finish, commit (see the
package's docstring for its contract)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from trace_stream.adapters.base import Adapter, BatchAdapter
from trace_stream.adapters.posting import Poster, Work
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.core.messages import TP, Message
from trace_stream.core.topics import Topics
from trace_stream.kafka import Consumer, TransactionAborted, TransactionalProducer
from trace_stream.pipeline.consent import Decision
from trace_stream.pipeline.routing import RetryPolicy
from trace_stream.stages.deliver.finish import Finisher
from trace_stream.state.batching import Batcher
from trace_stream.state.breaker import Breaker
from trace_stream.state.commits import Commits
from trace_stream.state.gate import Gate
from trace_stream.state.hold import Hold
from trace_stream.state.intake import Intake, budget
from trace_stream.state.limits import RateLimit
from trace_stream.state.lookahead import InOrder, Timers
from trace_stream.state.offsets import OffsetTracker
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

BATCHED_MAX = 4
"""A batch adapter's due deliveries wait decoded for their batch, at most two batches'
worth a partition and this many batches' worth in all (4 x 500 x 3.7 KiB, about 7 MiB
at the file adapter's default size): enough for two partitions to have their next
batch whole while their last one is committed."""


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
        limit: RateLimit | None = None,
        rand: Callable[[], float] = random.random,
        consent: Callable[[str, str], Decision] | None = None,
        max_in_flight: int = 64,
        max_buffered: int = 1_000_000,
        max_held_bytes: int = 80 * 2**20,
        max_ahead: timedelta = timedelta(days=1),
        post_timeout: float = 60,
        commit_interval: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.stage = f"deliver.{adapter.name}"
        self._consumer = consumer_factory(self)
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._monotonic = monotonic
        self._max_in_flight = max_in_flight
        breaker = breaker or Breaker(0, timedelta(0))
        # A tracker's pause lasts at most as long as the longest retry tier waits.
        hold = Hold(max(policy.tiers))
        self._gate = Gate(breaker, hold, limit or RateLimit(clock()))
        self._tracker = OffsetTracker()
        observe = metrics.post_duration.labels(adapter.name).observe
        self._posts = Poster(adapter, runner, post_timeout, observe)
        self._batcher: Batcher | None = None
        if isinstance(adapter, BatchAdapter):
            age, key = adapter.batch_max_age.total_seconds(), adapter.batch_key
            self._batcher = Batcher(adapter.batch_size, age, key=lambda d: key(d.trace))
        # Batch files are named after their first offset: they need offset order.
        self._ahead: Timers | InOrder = Timers() if self._batcher is None else InOrder()
        room = budget(max_buffered, max_in_flight, self._batcher.size if self._batcher else 0)
        self._intake = Intake(
            self._consumer,
            room,
            self._tracker.unfinished,
            max_bytes=max_held_bytes,
            held_bytes=lambda: self._ahead.size,
        )
        metrics.buffer_budget_bytes.labels(adapter.name).set(max_held_bytes)
        self._commits = Commits(
            self._tracker,
            producer,
            self._consumer,
            aborted=TransactionAborted,
            interval=commit_interval,
            batcher=self._batcher,
            monotonic=monotonic,
        )
        self._finish = Finisher(
            adapter.name,
            self._tracker,
            dead_letter_topic=topics.dead_letter,
            policy=policy,
            breaker=breaker,
            hold=hold,
            consent=consent,
            alerter=alerter,
            metrics=metrics,
            health=health,
            clock=clock,
            max_ahead=max_ahead,
            rand=rand,
        )
        self._last_report = 0.0

    # -- the loop -------------------------------------------------------------------

    def run(self, stop: threading.Event, shutdown_timeout: float = 20) -> None:
        """Loop until `stop` is set; then wait up to `shutdown_timeout` for the posts in
        flight and commit what finished."""
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
        self._intake.throttle()
        wanted = min(500, max(1, self._intake.room()))
        messages = self._consumer.consume(wanted, self._poll_timeout())
        now = self._clock()
        for m in messages:
            self._accept(m)
        self._release(now)
        if self._batcher is not None and not self._commits.stalled():
            ready = self._batcher.ready(self._monotonic())
            self._posts.submit([Work(tp, tuple(items)) for tp, items in ready])
        self._confirm()
        if self._commits.due():
            self._commits.start()
        self._report(now)

    def read_positions(self) -> dict[TP, int]:
        """The next offset this deliverer will read, per partition it has read from
        (a snapshot, safe to call from another thread)."""
        return self._intake.positions

    def _poll_timeout(self) -> float:
        """How long consume may block: until a post may finish or a delivery falls due."""
        if self._batcher is None and len(self._posts) >= self._max_in_flight:
            self._posts.wait(0.05, first=True)  # no slot: only a finished post can help
            return 0.0
        now = self._clock()
        cap = 0.05 if self._posts or self._commits.under_way else 0.5
        if self._commits.stalled():
            return cap  # nothing may start: look again for the transaction's end
        due = self._ahead.next_due()
        wake = None if due is None else self._gate.wake_at(due, now)
        if wake is not None:
            cap = min(cap, max(0.0, (wake - now).total_seconds()))
        if self._batcher is not None:
            cap = self._batcher.wait_seconds(self._monotonic(), cap)
        return cap

    def _release(self, now: datetime) -> None:
        """Start the posts of the deliveries that are due, as slots and the adapter's
        limit allow."""
        if self._gate.closed(now):
            return  # the adapter is held back: due deliveries wait in memory and in Kafka
        if self._commits.stalled():
            return  # Kafka is slow to confirm: posting more would add to an abort's rework
        batcher, ahead = self._batcher, self._ahead
        # A batch adapter posts one batch per partition at a time: what is due joins the
        # partition's next one, decoded, at most two batches' worth a partition (the next
        # is whole when the one in flight is committed) and BATCHED_MAX in all.
        if batcher is not None and isinstance(ahead, InOrder):  # always together
            per_partition = 2 * batcher.size
            slots = max(0, BATCHED_MAX * batcher.size - batcher.waiting())
            entries = ahead.pop_due(now, slots, room=lambda tp: per_partition - batcher.waiting(tp))
        else:
            slots = min(self._max_in_flight - len(self._posts), self._gate.allowance(now))
            entries = ahead.pop_due(now, slots)
        works = []
        for tp, offset, raw in entries:
            delivery = self._finish.release(tp, offset, raw, now)
            if delivery is None or not self._finish.allowed(tp, offset, delivery):
                continue
            if batcher is not None:
                batcher.add(tp, offset, delivery, self._monotonic())
            else:
                works.append(Work(tp, ((offset, delivery),)))
        if batcher is None:
            self._gate.spend(now, len(works))
            self._posts.submit(works)

    def _accept(self, m: Message) -> None:
        """Hold a record read until it is due, as bytes: its due time comes from its
        header, and its value is decoded once, when it is released."""
        if self._intake.admit(m) and (due_at := self._finish.read(m)) is not None:
            self._tracker.start(m.tp, m.offset)
            self._ahead.add(m.tp, m.offset, due_at, m.value or b"")

    def _report(self, now: datetime) -> None:
        """Twice a second: the due lag of what this deliverer holds, its buffer, and the
        read positions for the backlog probe."""
        if self._monotonic() - self._last_report < 0.5:
            return
        self._last_report = self._monotonic()
        held = [self._ahead.oldest_due(), self._posts.oldest_due()]
        if self._batcher is not None:
            held.append(self._batcher.oldest_due())
        oldest = min((t for t in held if t is not None), default=None)
        lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        self._metrics.report_due_lag(self.adapter.name, "memory", lag)
        self._metrics.buffered.labels(self.adapter.name).set(self._tracker.unfinished())
        self._metrics.buffered_bytes.labels(self.adapter.name).set(self._ahead.size)
        self._metrics.in_flight.labels(self.adapter.name).set(len(self._posts))
        self._metrics.tracker_paused.labels(self.adapter.name).set(self._gate.paused(now))
        due = self._ahead.next_due()
        self._metrics.report_limit(
            self.adapter.name, self._gate.waiting_for(now) if due and due <= now else None
        )
        self._intake.snapshot()
        self._finish.report()

    def _collect(self) -> None:
        for work, outcome in self._posts.finished():
            for offset, delivery in work.items:
                self._finish.settle(work.tp, offset, delivery, outcome)
            if self._batcher is not None:
                self._batcher.settled(work.tp)

    def _confirm(self, wait: bool = False) -> None:
        """Make the transaction under way count once it is through (`commits`); after
        an abort, forget everything uncommitted and read it again."""
        if self._commits.settle(wait):
            log.warning("transaction aborted, rewinding", extra={"adapter": self.adapter.name})
            self._forget()
            self._consumer.rewind()

    def _drain(self, timeout: float, tps: list[TP] | None = None) -> None:
        """Wait (bounded) for in-flight posts, then commit what finished and wait until
        that is through."""
        self._posts.wait(timeout, tps)
        self._collect()
        self._confirm(wait=True)
        self._commits.start(tps)
        self._confirm(wait=True)

    def _forget(self, tps: list[TP] | None = None) -> None:
        """Forget all that was read from `tps` (every partition when None) and not
        committed: posts in flight, unfinished offsets, what waits to be due."""
        self._posts.forget(tps)
        self._tracker.forget(tps)
        if self._batcher is not None:
            self._batcher.forget(tps)
        self._ahead.forget(tps)
        self._intake.forget(tps)

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
        self._forget(tps)
