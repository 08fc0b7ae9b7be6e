"""How each record the deliverer reads ends, and what it leaves for the transaction.

Every record read is finished in the offset tracker with the records its
transaction produces and the effects to run once that transaction is through:

    read, for another adapter           -> nothing (skipped)
    read, due too far ahead             -> a dead letter; counted once committed
    due, unusable or not due after all  -> a dead letter; counted once committed
    posted                              -> no record; counted as pushed, lateness observed
    failed, retries left                -> a delivery record on the tier's retry topic
    failed for good                     -> a dead letter; counted and alerted once committed
    consent withdrawn, adapter removed  -> no record; counted once committed, never retried
    consent cannot be read              -> a dead letter (`signal_settings_unreadable`)
    the endpoint is gone (410)          -> not finished: it stays in Kafka, uncommitted

Every post's outcome feeds the circuit breaker; when one opens it, an alert says until
when. A Retry-After the tracker sends (with a 429 or 5xx) pauses the whole adapter
until then (`state.hold`); a 410 Gone stops it until a restart: an alert, the metric
and readiness say so. Logs and metrics hold ids and reasons, never a trace's content.
A record is held as bytes until its due time, read from its `trace.due` header, and
decoded once, when due; a value due later than that header said is not posted.
A part of the deliver stage, not a stage: it runs on the deliverer's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import get_args

from trace_stream import codec
from trace_stream.codec import wire
from trace_stream.codec.wire import dead_letter_record, delivery_record
from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.messages import TP, Message
from trace_stream.core.outcomes import Delivered, Gone, Outcome, Permanent, Retriable
from trace_stream.core.reasons import REASONS, Reason
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.pipeline.consent import (
    UNREADABLE,
    Decision,
    Post,
    Withdrawn,
    WithdrawnReason,
)
from trace_stream.pipeline.routing import Abandon, Retry, RetryPolicy, Stop, route
from trace_stream.state.breaker import Breaker
from trace_stream.state.hold import Hold
from trace_stream.state.offsets import OffsetTracker
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.logs import Tally
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class Finisher:
    def __init__(
        self,
        adapter: str,
        tracker: OffsetTracker,
        *,
        dead_letter_topic: str,
        policy: RetryPolicy,
        breaker: Breaker,
        hold: Hold,
        consent: Callable[[str, str], Decision] | None,
        alerter: Alerter,
        metrics: Metrics,
        health: Health,
        clock: Callable[[], datetime],
        max_ahead: timedelta,
        rand: Callable[[], float],
    ) -> None:
        """`max_ahead`: no valid event's delivery is due further ahead than this;
        `rand`: the random source of the retries' jitter."""
        self._name = adapter
        self._tracker = tracker
        self._dlq = dead_letter_topic
        self._policy = policy
        self._breaker = breaker
        self._hold = hold
        self._health = health
        self._rand = rand
        self._consent = consent
        self._alerter = alerter
        self._metrics = metrics
        self._clock = clock
        self._max_ahead = max_ahead
        self._tally = Tally(log, "posts in the last minute")  # posted, retried
        self._pushed = metrics.pushed.labels(adapter)  # once per post: looked up once
        self._lateness = metrics.lateness.labels(adapter)
        self._paused = metrics.adapter_paused.labels(adapter)
        # Every series exists from the start, at 0: increase() counts nothing for a
        # counter whose first sample is already 1, so the first dead letter of a reason
        # would raise no TraceDeliveryAbandoned; and a dashboard shows 0, not no data.
        self._paused.set(0)
        metrics.adapter_stopped.labels(adapter).set(0)
        for reason in (r for r, about in REASONS.items() if "deliver" in about.stage):
            metrics.dead_lettered.labels(adapter, reason)
            metrics.alerts.labels(adapter, reason)
        for withdrawn in get_args(WithdrawnReason):
            metrics.withdrawn.labels(adapter, withdrawn)

    def read(self, m: Message) -> datetime | None:
        """When a record read falls due, to hold it until then; None when the record
        ends here. Not finished: the caller starts its offset. The value is decoded
        only when due (`release`), unless the record's headers lack its adapters or
        due time (one written before they existed)."""
        targets = wire.targets(m)
        if targets is not None and self._name not in targets:
            self._tracker.skip(m.tp, m.offset)
            return None
        due_at = wire.due_at(m) if targets is not None else None
        if due_at is None:
            try:
                delivery = codec.decode_delivery(m.value or b"")
            except InvalidEvent as exc:
                self._reject(m.tp, m.offset, exc.reason, exc.detail)
                return None
            if self._name not in delivery.adapters:
                self._tracker.skip(m.tp, m.offset)
                return None
            due_at = delivery.due_at
        if due_at > self._clock() + self._max_ahead:
            detail = f"due more than {self._max_ahead} ahead"
            self._reject(m.tp, m.offset, "due_out_of_range", detail)
            return None
        return due_at

    def release(self, tp: TP, offset: int, raw: bytes, now: datetime) -> TraceDelivery | None:
        """The delivery of a record held until `now`, decoded; None when it ends here
        instead: a value that is not a delivery, not for this adapter, or due later than
        its header said (never posted early) is finished."""
        try:
            delivery = codec.decode_delivery(raw)
        except InvalidEvent as exc:
            self._reject(tp, offset, exc.reason, exc.detail)
            return None
        if self._name not in delivery.adapters:
            self._tracker.finish(tp, offset)
            return None
        if delivery.due_at > now:
            self._reject(tp, offset, "undecodable", f"due later than its {wire.DUE} header")
            return None
        return delivery

    def allowed(self, tp: TP, offset: int, delivery: TraceDelivery) -> bool:
        """Does consent still hold for this post? If not, finish the delivery here."""
        if self._consent is None:
            return True
        decision = self._consent(delivery.trace.signal_id, self._name)
        if isinstance(decision, Post):
            return True
        ctx = {
            "signal_id": delivery.trace.signal_id,
            "trade_id": delivery.trace.trade_id,
            "adapter": self._name,
            "attempt": delivery.attempt + 1,
        }
        if isinstance(decision, Withdrawn):
            reason = decision.reason
            log.info("not posted: %s", reason.replace("_", " "), extra=ctx)
            count = self._metrics.withdrawn.labels(self._name, reason).inc
            self._tracker.finish(tp, offset, [], [count])
            return False
        letter = dead_letter(
            UNREADABLE,
            f"consent cannot be checked: {decision.detail}",
            origin=delivery.origin,
            at=self._clock(),
            adapter=self._name,
            delivery=delivery.model_copy(update={"adapters": (self._name,)}),
        )
        log.warning("delivery dead-lettered", extra={**ctx, "reason": letter.reason})
        self._abandon(tp, offset, letter)
        return False

    def settle(self, tp: TP, offset: int, delivery: TraceDelivery, outcome: Outcome) -> None:
        """Finish a delivery whose post has this outcome."""
        now = self._clock()
        ctx = {
            "trade_id": delivery.trace.trade_id,
            "adapter": self._name,
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
            if log.isEnabledFor(logging.DEBUG):  # once per post: its fields cost more
                log.debug("trace posted", extra={**ctx, "due_at": delivery.due_at.isoformat()})
        else:
            self._metrics.failed.labels(self._name, outcome.reason).inc()
            log.warning(
                "post failed", extra={**ctx, "reason": outcome.reason, "detail": outcome.detail}
            )
        r = route(delivery, self._name, outcome, policy=self._policy, now=now, rand=self._rand)
        if isinstance(r, Retry):
            self._tally.add("retried")
            due = r.delivery.due_at.isoformat()
            log.debug("retry scheduled", extra={**ctx, "retry_topic": r.topic, "due_at": due})
            self._tracker.finish(tp, offset, [delivery_record(r.topic, r.delivery)])
        elif isinstance(r, Abandon):
            self._abandon(tp, offset, r.letter)
        elif isinstance(r, Stop):
            pass  # left unfinished: no commit passes it; a restart reads it again
        else:
            self._tracker.finish(tp, offset)

    def report(self) -> None:
        """Once a minute at most, how many were posted and retried."""
        self._tally.report(adapter=self._name)

    def _watch(self, outcome: Outcome, now: datetime) -> None:
        """Feed the circuit breaker and the tracker's hold; say so loudly when either
        holds the adapter back."""
        if isinstance(outcome, Retriable) and outcome.retry_after:
            if self._hold.pause(now, outcome.retry_after):
                until = self._hold.until(now)
                self._metrics.tracker_paused.labels(self._name).set(1)
                self._alerter.slowed(self._name, until.isoformat() if until else "", outcome.detail)
        elif isinstance(outcome, Gone) and self._hold.stop(outcome.detail):
            self._metrics.adapter_stopped.labels(self._name).set(1)
            self._health.stopped(self._name, f"the tracker answered {outcome.detail} Gone")
            self._alerter.stopped(self._name, outcome.detail)
        if isinstance(outcome, Delivered):
            self._breaker.success()
            self._paused.set(0)
        elif isinstance(outcome, Permanent) and self._breaker.permanent_failure(now):
            until = self._breaker.closed_at(now)
            self._paused.set(1)
            self._alerter.paused(self._name, until.isoformat() if until else "")

    def _reject(self, tp: TP, offset: int, reason: Reason, detail: str) -> None:
        """Dead-letter a record that cannot become a post."""
        source = Origin(topic=tp[0], partition=tp[1], offset=offset)
        letter = dead_letter(reason, detail, origin=source, at=self._clock(), adapter=self._name)
        where = {"topic": tp[0], "partition": tp[1], "offset": offset}
        log.warning("delivery dead-lettered", extra={"reason": reason, "detail": detail, **where})
        self._tracker.start(tp, offset)  # one held is started already: no change then
        self._tracker.finish(
            tp,
            offset,
            [dead_letter_record(self._dlq, letter, source)],
            [lambda: self._metrics.dead_lettered.labels(self._name, reason).inc()],
        )

    def _abandon(self, tp: TP, offset: int, letter: DeadLetter) -> None:
        """Finish a delivery as a dead letter; once committed, count it and alert."""
        source = Origin(topic=tp[0], partition=tp[1], offset=offset)
        self._tracker.finish(
            tp,
            offset,
            [dead_letter_record(self._dlq, letter, source)],
            [lambda: self._dead_lettered(letter)],
        )

    def _dead_lettered(self, letter: DeadLetter) -> None:
        self._metrics.dead_lettered.labels(self._name, letter.reason).inc()
        self._alerter.abandoned(letter)
