"""Alert when a delivery is abandoned: a WARNING line and a counter for every one; an
ERROR line and, when ALERT_WEBHOOK_URL is set, a Slack-compatible JSON post that
never blocks delivery, throttled.

Alerts are throttled per (adapter, reason): when a tracker revokes a token, every
delivery to it fails the same way, and one message per trade would bury the channel
and the log. Within `min_interval` of the last alert for the same pair, further ones
are only counted (and logged at WARNING), and the next alert says how many were held
back. ERROR is for what an operator must act on: one line per alert.

Besides abandoned deliveries, an adapter held back as a whole says so: `paused` (its
circuit breaker opened), `slowed` (the tracker's Retry-After: a WARNING, it passes by
itself) and `stopped` (410 Gone: an ERROR, someone must fix the configuration).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

from trace_stream.adapters.runner import AsyncRunner
from trace_stream.core.records import DeadLetter
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class Alerter:
    def __init__(
        self,
        metrics: Metrics,
        runner: AsyncRunner,
        http: httpx.AsyncClient,
        url: str | None,
        min_interval: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._runner = runner
        self._http = http
        self._url = url
        self._min_interval = min_interval
        self._clock = clock
        self._last_post: dict[tuple[str, str], float] = {}
        self._held_back: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # deliverers of several adapters call in

    def abandoned(self, letter: DeadLetter) -> None:
        """Called once the dead letter is committed. Holds ids and reasons only: a
        WARNING line and the counter for each one; an ERROR line (and the post) at
        most once per `min_interval` for each adapter and reason, saying how many more
        came meanwhile."""
        trade_id = letter.delivery.trace.trade_id if letter.delivery else None
        attempts = letter.delivery.attempt if letter.delivery else 0
        adapter = letter.adapter or "none"
        about = {
            "trade_id": trade_id,
            "adapter": adapter,
            "attempts": attempts,
            "reason": letter.reason,
            "detail": letter.detail,
        }
        log.warning("delivery abandoned", extra=about)
        self._metrics.alerts.labels(adapter, letter.reason).inc()
        held_back = self._take_turn((adapter, letter.reason))
        if held_back is None:
            return
        log.error("alert: deliveries abandoned", extra={**about, "more_since_last": held_back})
        if not self._url:
            return
        text = (
            f":rotating_light: trace-stream abandoned trade {trade_id} for {adapter} "
            f"after {attempts} attempt(s): {letter.reason} ({letter.detail})"
        )
        if held_back:
            text += f"; {held_back} more like it since the last alert"
        self._runner.submit(self._post(text))

    def paused(self, adapter: str, until: str) -> None:
        """An adapter's circuit breaker opened: deliveries to it wait in Kafka."""
        log.error(
            "adapter paused after repeated permanent failures",
            extra={"adapter": adapter, "until": until},
        )
        self._metrics.alerts.labels(adapter, "adapter_paused").inc()
        if self._url and self._take_turn((adapter, "adapter_paused")) is not None:
            text = (
                f":rotating_light: trace-stream paused deliveries to {adapter} until {until}: "
                "the tracker keeps rejecting our requests (credentials or body). Deliveries "
                "wait in Kafka and resume once it accepts them again."
            )
            self._runner.submit(self._post(text))

    def slowed(self, adapter: str, until: str, detail: str) -> None:
        """A tracker asked us to wait (Retry-After): every delivery to it waits."""
        log.warning(
            "adapter paused: the tracker asked to retry later",
            extra={"adapter": adapter, "until": until, "detail": detail},
        )
        self._metrics.alerts.labels(adapter, "tracker_paused").inc()
        if self._url and self._take_turn((adapter, "tracker_paused")) is not None:
            text = (
                f":hourglass: trace-stream paused deliveries to {adapter} until {until}: the "
                f"tracker asked us to slow down ({detail}). Deliveries wait in Kafka."
            )
            self._runner.submit(self._post(text))

    def stopped(self, adapter: str, detail: str) -> None:
        """A tracker said its endpoint is gone: the adapter stopped until a restart."""
        log.error(
            "adapter stopped: the tracker says the endpoint is gone; fix its configuration "
            "and restart",
            extra={"adapter": adapter, "detail": detail},
        )
        self._metrics.alerts.labels(adapter, "adapter_stopped").inc()
        if self._url and self._take_turn((adapter, "adapter_stopped")) is not None:
            text = (
                f":rotating_light: trace-stream stopped deliveries to {adapter}: the tracker "
                f"says the endpoint is gone ({detail}). Deliveries wait in Kafka; fix the "
                "adapter's configuration and restart the service to send them."
            )
            self._runner.submit(self._post(text))

    def _take_turn(self, key: tuple[str, str]) -> int | None:
        """None while `key` was posted within min_interval; else how many were held back."""
        now = self._clock()
        with self._lock:
            last = self._last_post.get(key)
            if last is not None and now - last < self._min_interval:
                self._held_back[key] = self._held_back.get(key, 0) + 1
                return None
            self._last_post[key] = now
            return self._held_back.pop(key, 0)

    async def _post(self, text: str) -> None:
        assert self._url is not None
        try:
            response = await self._http.post(self._url, json={"text": text}, timeout=5)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self._metrics.alert_failures.inc()
            log.warning("alert post failed", extra={"error": type(exc).__name__})
