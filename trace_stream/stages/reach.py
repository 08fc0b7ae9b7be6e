"""Are the brokers reachable? Asked every `every` seconds on a client of its own, so
that readiness follows an outage within seconds, whatever the other stages are
blocked in (a transaction, a rebalance, a drain).

The stage tells `Health` each time a broker answered (`Health.reached`); /readyz turns
503 once none has answered for `Health`'s `unreachable_after` seconds. Each ask is
bounded by the ping (`kafka.connect.Ping`), which replaces a client whose call never
returned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from trace_stream.telemetry.health import Health

log = logging.getLogger(__name__)


class Ping(Protocol):
    def __call__(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class KafkaWatch:
    name = "kafka"
    watched = False  # it has no loop to beat; it feeds readiness through `reached`

    def __init__(
        self,
        ping_factory: Callable[[], Ping],
        health: Health,
        every: float = 1.0,
        timeout: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = ping_factory
        self._health = health
        self._every = every
        self._timeout = timeout
        self._monotonic = monotonic

    def run(self, stop: threading.Event) -> None:
        ping = self._factory()
        down_since: float | None = None
        try:
            while not stop.is_set():
                asked = self._monotonic()
                if ping(self._timeout):
                    self._health.reached()
                    if down_since is not None:
                        log.info(
                            "Kafka answers again", extra={"after_s": round(asked - down_since, 1)}
                        )
                    down_since = None
                elif down_since is None:
                    down_since = asked
                    log.warning("no Kafka broker answers: not ready until one does")
                stop.wait(max(0.0, self._every - (self._monotonic() - asked)))
        finally:
            ping.close()
