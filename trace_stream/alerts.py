"""Alert when a delivery is abandoned: an ERROR log line, a counter and, when
ALERT_WEBHOOK_URL is set, a Slack-compatible JSON post that never blocks delivery.
"""

from __future__ import annotations

import logging

import httpx

from .aio import AsyncRunner
from .metrics import Metrics
from .records import DeadLetter

log = logging.getLogger(__name__)


class Alerter:
    def __init__(
        self, metrics: Metrics, runner: AsyncRunner, http: httpx.AsyncClient, url: str | None
    ) -> None:
        self._metrics = metrics
        self._runner = runner
        self._http = http
        self._url = url

    def abandoned(self, letter: DeadLetter) -> None:
        """Called once the dead letter is committed. Holds ids and reasons only."""
        trade_id = letter.delivery.trace.trade_id if letter.delivery else None
        attempts = letter.delivery.attempt if letter.delivery else 0
        adapter = letter.adapter or "none"
        log.error(
            "delivery abandoned",
            extra={
                "trade_id": trade_id,
                "adapter": adapter,
                "attempts": attempts,
                "reason": letter.reason,
                "detail": letter.detail,
            },
        )
        self._metrics.alerts.labels(adapter, letter.reason).inc()
        if self._url:
            text = (
                f":rotating_light: trace-stream abandoned trade {trade_id} for {adapter} "
                f"after {attempts} attempt(s): {letter.reason} ({letter.detail})"
            )
            self._runner.submit(self._post(text))

    async def _post(self, text: str) -> None:
        assert self._url is not None
        try:
            response = await self._http.post(self._url, json={"text": text}, timeout=5)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self._metrics.alert_failures.inc()
            log.warning("alert post failed", extra={"error": type(exc).__name__})
