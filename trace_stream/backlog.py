"""What is waiting in the delay and retry topics, read from Kafka itself.

For every adapter's consumer group and every delay/retry partition:

  trust_trace_queue_pending{adapter,topic}  end offset - committed offset
  trust_trace_due_lag_seconds{adapter}      now - due time of the oldest uncommitted
                                            record, when it is already due (else 0)

Delay topics always have consumer lag by design, so raw lag says little; due lag is
the signal for alerts and autoscaling. Both are read from the broker, not from this
process's memory, so they stay right while the deliverers are stopped or stuck.
Pending counts include transaction markers, so it can read a little high.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from . import codec
from .errors import InvalidEvent
from .kafka import TP, Reader
from .metrics import Metrics
from .topics import Topics

log = logging.getLogger(__name__)


class BacklogProbe:
    def __init__(
        self,
        *,
        reader: Reader,
        groups: Mapping[str, str],
        topics: Topics,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        """`groups` maps each adapter name to its deliverer's consumer group."""
        self._reader = reader
        self._groups = dict(groups)
        self._queues = [topics.delay, *dict.fromkeys(topics.retries)]
        self._metrics = metrics
        self._clock = clock

    def refresh(self) -> None:
        tps = [tp for topic in self._queues for tp in self._reader.partitions(topic)]
        marks = self._reader.watermarks(tps)
        for adapter, group in self._groups.items():
            committed = self._reader.committed(group, tps)
            heads: dict[TP, tuple[int, int]] = {}
            pending = dict.fromkeys(self._queues, 0)
            for tp in tps:
                low, high = marks[tp]
                position = max(committed.get(tp, -1), low)
                pending[tp[0]] += max(0, high - position)
                if position < high:
                    heads[tp] = (position, position + 1)
            for topic, count in pending.items():
                self._metrics.queue_pending.labels(adapter, topic).set(count)
            self._metrics.due_lag.labels(adapter).set(self._due_lag(adapter, heads))

    def _due_lag(self, adapter: str, heads: dict[TP, tuple[int, int]]) -> float:
        now = self._clock()
        lag = 0.0
        for m in self._reader.read(heads, timeout=10):
            try:
                delivery = codec.decode_delivery(m.value or b"")
            except InvalidEvent:
                continue  # dead-lettered as soon as a deliverer reads it
            if adapter in delivery.adapters:
                lag = max(lag, (now - delivery.due_at).total_seconds())
        return lag

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # a metric gap must never stop delivery
                log.warning("backlog probe failed", extra={"error": type(exc).__name__})
            stop.wait(interval)
        self._reader.close()
