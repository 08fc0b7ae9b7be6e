"""Signal settings topic -> the table every deliverer consults before each post.

The platform publishes each signal's current tracing settings on a compacted topic
keyed by signal id (`TRACE_SIGNAL_SETTINGS_TOPIC`, schema `signal_tracing.avsc`).
Every replica holds the whole table: this stage reads every partition, without a
group, from the beginning, and keeps reading while the service runs.

The stage's contract (`SignalFollower.run`):
- `loaded` is set once every partition has been read up to the end offset it had
  when loading began; until then the deliverers do not start and the stage has not
  joined (/readyz: not ready). With no topic configured, or none on the broker, it
  is set at once and each event's own flags decide, as said once at start-up; an
  absent topic is looked for again every `recheck` seconds and followed from its
  beginning once it appears. Partitions added later are found as often, and read
  from their beginning.
- Records apply in offset order: the latest per key wins, a tombstone removes the
  entry. A record that cannot be read makes its signal `Unreadable` (its deliveries
  are dead-lettered, see `consent`), a record without a usable key is ignored; both
  are logged without their contents and counted.
- A Kafka outage leaves the table as it was; the client reconnects on its own and
  reads on from its position. Only a fatal client error stops the stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from trace_stream.codec.wire import parse_signal_settings
from trace_stream.core.backoff import Stopped, backoff
from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import TP, Message
from trace_stream.kafka import Follower
from trace_stream.pipeline.consent import InvalidSettings, SignalTable, Unreadable
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

STAGE = "signals"
T = TypeVar("T")
_FATAL = {"TOPIC_AUTHORIZATION_FAILED", "_FATAL"}
"""Errors asking again cannot cure: the principal may not read the topic."""


def _curable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and exc.code not in _FATAL


class SignalFollower:
    name = STAGE

    def __init__(
        self,
        *,
        topic: str | None,
        follower_factory: Callable[[str], Follower],
        table: SignalTable,
        metrics: Metrics,
        health: Health,
        timeout: float = 10,
        recheck: float = 60,
        retry_every: float = 2,
    ) -> None:
        self.topic = topic
        self.table = table
        self.loaded = threading.Event()
        self._factory = follower_factory
        self._metrics = metrics
        for reason in ("no_key", "unreadable"):  # at 0 from the start, for increase()
            metrics.signal_settings_invalid.labels(reason)
        self._health = health
        self._timeout = timeout
        self._recheck = recheck
        self._retry_every = retry_every
        self._records = 0

    @property
    def watched(self) -> bool:
        """Without a topic there is nothing to load: not a stage to wait for."""
        return bool(self.topic)

    def run(self, stop: threading.Event) -> None:
        if not self.topic:  # not a stage then: nothing to beat or join
            log.info("no signal settings topic: each event's own opt-in and trackers decide")
            self.loaded.set()
            return
        follower = self._factory(self.topic)
        try:
            tps = self._find(follower, stop)
            if tps is None:
                return
            follower.assign(tps)
            self._load(follower, stop)
            looked = time.monotonic()
            while not stop.is_set():
                self._health.beat(STAGE)
                self._apply(follower.poll(0.5))
                if time.monotonic() - looked >= self._recheck:
                    looked = time.monotonic()
                    self._grown(follower)
        finally:
            follower.close()

    def _find(self, follower: Follower, stop: threading.Event) -> list[TP] | None:
        """The topic's partitions; while it does not exist, today's behaviour (said
        once) and another look every `recheck` seconds."""
        tps = self._ask(lambda: follower.partitions(self._timeout), stop)
        if tps is None and stop.is_set():
            return None
        if tps is None:
            log.warning(
                "signal settings topic not found: each event's own opt-in and trackers "
                "decide until it appears",
                extra={"topic": self.topic},
            )
            self._ready()
        while tps is None:
            looked = time.monotonic()
            while time.monotonic() - looked < self._recheck:
                self._health.beat(STAGE)
                if stop.wait(min(1.0, self._recheck)):
                    return None
            tps = self._ask(lambda: follower.partitions(self._timeout), stop)
        if self.loaded.is_set():
            log.info("signal settings topic found: following it", extra={"topic": self.topic})
        return tps

    def _load(self, follower: Follower, stop: threading.Event) -> None:
        started = time.monotonic()
        ends = self._ask(lambda: follower.ends(self._timeout), stop)
        if ends is None:
            return
        todo = {tp for tp, (first, end) in ends.items() if end > first}
        said = started
        while todo and not stop.is_set():
            self._health.beat(STAGE)
            self._apply(follower.poll(0.2))
            # Transaction markers and compacted gaps take offsets too: the position,
            # not the last record read, tells when a partition is read to its end.
            positions = follower.positions()
            todo = {tp for tp in todo if positions.get(tp, -1) < ends[tp][1]}
            if time.monotonic() - said >= 10:
                said = time.monotonic()
                log.info(
                    "loading signal settings",
                    extra={"records": self._records, "partitions_left": len(todo)},
                )
        if stop.is_set():
            return
        log.info(
            "signal settings loaded",
            extra={
                "topic": self.topic,
                "signals": len(self.table),
                "records": self._records,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        self._ready()

    def _grown(self, follower: Follower) -> None:
        """Partitions added to the topic since: read them from their beginning too."""
        try:
            tps = follower.partitions(self._timeout)
        except KafkaError as exc:
            log.warning("signal settings: Kafka did not answer: %s", exc)
            return
        if tps:
            follower.assign(tps)

    def _ask(self, call: Callable[[], T], stop: threading.Event) -> T | None:
        """`call()`, asked again every `retry_every` seconds while Kafka does not
        answer (a broker restart must not stop the service); None once `stop` is set."""
        if stop.is_set():
            return None

        def beat_and_call() -> T:
            self._health.beat(STAGE)
            return call()

        def again(attempt: int, failure: BaseException, pause: float | None) -> None:
            log.warning("signal settings: Kafka did not answer, asking again: %s", failure)

        every = self._retry_every
        asking = backoff(first=every, cap=every, retry_on=_curable, stop=stop, said=again)
        try:
            return asking(beat_and_call)
        except Stopped:
            return None

    def _ready(self) -> None:
        self._health.joined(STAGE)
        self._health.beat(STAGE)
        self.loaded.set()

    def _apply(self, messages: list[Message]) -> None:
        for m in messages:
            self._records += 1
            where = f"{m.topic}[{m.partition}]@{m.offset}"
            try:
                signal_id, entry = parse_signal_settings(m.key, m.value, where=where)
            except InvalidSettings as exc:
                self._metrics.signal_settings_invalid.labels("no_key").inc()
                log.warning("signal settings record ignored: %s", exc, extra={"at": where})
                continue
            if isinstance(entry, Unreadable):
                self._metrics.signal_settings_invalid.labels("unreadable").inc()
                log.warning(
                    "signal settings unreadable: its trades are dead-lettered until fixed",
                    extra={"signal_id": signal_id, "detail": entry.detail, "at": where},
                )
            self.table.apply(signal_id, entry)
        if messages:
            self._metrics.signal_settings.set(len(self.table))
