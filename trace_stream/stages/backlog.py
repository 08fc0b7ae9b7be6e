"""What is waiting in the delay and retry topics, read from Kafka itself.

For every adapter's consumer group and every delay/retry partition:

  trust_trace_queue_pending{adapter,topic}  end offset - committed offset
  trust_trace_due_lag_seconds{adapter}      how long the oldest overdue delivery has
                                            waited (0 when none is overdue)

and for stage 1's group on the input topic (trade.closed), per partition:

  trust_trace_input_lag{topic,partition}                        end - committed offset
  trust_trace_input_oldest_unread_age_seconds{topic,partition}  age of the first record
                                                                not committed (0: none)

Delay topics always have consumer lag by design, so raw lag says little; due lag is
the signal for alerts and autoscaling. The deliverer reports the due lag of what it
holds in memory; this probe adds what it has not read: for a partition the deliverer
reads, up to `sample` records from its read position on (records it cannot read
because its buffer is full, or because it is stuck); for any other partition (not
assigned here, or not read yet), the record at the committed offset. Both are read
from the broker, not from this process's memory, so they stay right while a
deliverer is stopped or stuck. Pending counts include transaction markers, so it can
read a little high.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from trace_stream import codec
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.messages import TP
from trace_stream.core.topics import Topics
from trace_stream.kafka import Reader, Stuck, bounded
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

PROBE_SAMPLE = 100
"""Records read per partition past a deliverer's position, at most, each round."""


class BacklogProbe:
    def __init__(
        self,
        *,
        reader: Reader,
        groups: Mapping[str, str],
        topics: Topics,
        metrics: Metrics,
        clock: Callable[[], datetime],
        positions: Mapping[str, Callable[[], Mapping[TP, int]]] | None = None,
        sample: int = PROBE_SAMPLE,
        interval: float = 15,
        bound: float = 60,
        renew: Callable[[], Reader] | None = None,
        input_group: str | None = None,
    ) -> None:
        """`groups` maps each adapter name to its deliverer's consumer group, `positions`
        to a function giving its deliverer's next offset to read per partition. `run`
        refreshes every `interval` seconds, each refresh bounded by `bound` seconds; a
        reader whose call never returned is abandoned for a new one from `renew`.
        `input_group`: stage 1's consumer group, whose input lag to report."""
        self._reader = reader
        self._interval = interval
        self._bound = bound
        self._renew = renew
        self._groups = dict(groups)
        self._positions = dict(positions or {})
        self._sample = sample
        self._queues = [topics.delay, *dict.fromkeys(topics.retries)]
        self._metrics = metrics
        self._clock = clock
        self._input = (topics.input, input_group) if input_group else None

    def refresh(self) -> None:
        tps = [tp for topic in self._queues for tp in self._reader.partitions(topic)]
        marks = self._reader.watermarks(tps)
        for adapter, group in self._groups.items():
            committed = self._reader.committed(group, tps)
            reading = self._positions.get(adapter, dict)()
            unread: dict[TP, tuple[int, int]] = {}
            pending = dict.fromkeys(self._queues, 0)
            for tp in tps:
                low, high = marks[tp]
                position = max(committed.get(tp, -1), low)
                pending[tp[0]] += max(0, high - position)
                start = max(position, reading.get(tp, position))
                count = self._sample if tp in reading else 1
                if start < high:
                    unread[tp] = (start, min(high, start + count))
            for topic, n in pending.items():
                self._metrics.queue_pending.labels(adapter, topic).set(n)
            self._metrics.report_due_lag(adapter, "kafka", self._due_lag(adapter, unread))
        if self._input is not None:
            self._input_lag(*self._input)

    def _input_lag(self, topic: str, group: str) -> None:
        """Read from the broker, not from stage 1: right while stage 1 is stuck."""
        tps = self._reader.partitions(topic)
        marks = self._reader.watermarks(tps)
        committed = self._reader.committed(group, tps)
        heads: dict[TP, tuple[int, int]] = {}
        for tp in tps:
            low, high = marks[tp]
            position = max(committed.get(tp, -1), low)
            self._metrics.input_lag.labels(*tp).set(max(0, high - position))
            if position < high:  # a few records: the first may be a transaction marker
                heads[tp] = (position, min(high, position + 10))
        age = dict.fromkeys(tps, 0.0)
        now = self._clock().timestamp()
        for m in self._reader.read(heads, timeout=10):
            if m.timestamp_ms is not None and age[m.tp] == 0.0:
                age[m.tp] = max(0.0, now - m.timestamp_ms / 1000)
        for tp, seconds in age.items():
            self._metrics.input_age.labels(*tp).set(seconds)

    def _due_lag(self, adapter: str, ranges: dict[TP, tuple[int, int]]) -> float:
        now = self._clock()
        lag = 0.0
        for m in self._reader.read(ranges, timeout=10):
            try:
                delivery = codec.decode_delivery(m.value or b"")
            except InvalidEvent:
                continue  # dead-lettered as soon as a deliverer reads it
            if adapter in delivery.adapters:
                lag = max(lag, (now - delivery.due_at).total_seconds())
        return lag

    name = "backlog"
    watched = False  # a metric gap never makes the service unready

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                bounded(self.refresh, self._bound, "backlog refresh")
            except Stuck:
                log.warning("backlog probe stuck, renewing its Kafka client")
                if self._renew is not None:
                    self._reader = self._renew()
            except Exception as exc:  # a metric gap must never stop delivery
                log.warning("backlog probe failed", extra={"error": type(exc).__name__})
            stop.wait(self._interval)
        with contextlib.suppress(Exception):
            bounded(self._reader.close, 5, "close")
