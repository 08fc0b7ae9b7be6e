"""Myfxbook: posts each closed trade, in Myfxbook's vocabulary, to a relay endpoint.

Myfxbook publishes no push API, so MYFXBOOK_WEBHOOK_URL is a bridge that accepts
this body and answers the way Myfxbook's own API does. The keys follow Myfxbook's
trade history (`get-history`) where it has one:

    ticket      Trace.trade_id       action      "Buy" | "Sell" (Trace.side)
    signalId    Trace.signal_id      lots        Trace.volume
    symbol      Trace.instrument     profit      Trace.profit_loss
    openTime    Trace.opened_at      openPrice   Trace.entry_price
    closeTime   Trace.closed_at      closePrice  Trace.exit_price

Times are ISO 8601 in UTC (Myfxbook's "MM/dd/yyyy HH:mm" drops seconds and zone).
Headers: `Authorization: Bearer <MYFXBOOK_WEBHOOK_TOKEN>` and `Idempotency-Key`.

Reply contract: a 2xx with JSON `{"error": false, "message": ...}` is Delivered;
`error: true` is Permanent, as `auth` when the message is about the session or
token, else `rejected`; any other 2xx body is Retriable `malformed_response` (a
proxy's HTML page, say). Non-2xx statuses are classified by `http.classify`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trace_stream.adapters.base import AdapterContext, Delivered, Outcome, Permanent, Retriable
from trace_stream.adapters.http import Response, classify, encode_json, post_bytes
from trace_stream.core import http_headers
from trace_stream.core.records import Trace
from trace_stream.settings import load

_AUTH_MESSAGE = re.compile(r"session|token|unauthori[sz]ed|not authori[sz]ed", re.IGNORECASE)


class MyfxbookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MYFXBOOK_", case_sensitive=False, extra="ignore")

    webhook_url: AnyHttpUrl = Field(description="the relay that takes Myfxbook-shaped bodies")
    webhook_token: SecretStr = Field(description="sent as Authorization: Bearer <token>")
    timeout_seconds: float = Field(default=10, gt=0, description="deadline of one post")

    @field_validator("webhook_token")
    @classmethod
    def _check_token(cls, value: SecretStr) -> SecretStr:
        if not http_headers.value_ok(value.get_secret_value()):
            raise ValueError(http_headers.VALUE_RULE)
        return value


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:  # naive times are taken as UTC already
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat() + "Z"


def body(trace: Trace) -> dict[str, Any]:
    """The Myfxbook-shaped body for one trace (see the module docstring)."""
    return {
        "ticket": trace.trade_id,
        "signalId": trace.signal_id,
        "symbol": trace.instrument,
        "action": trace.side.capitalize(),
        "lots": trace.volume,
        "openTime": _utc(trace.opened_at),
        "openPrice": trace.entry_price,
        "closeTime": _utc(trace.closed_at),
        "closePrice": trace.exit_price,
        "profit": trace.profit_loss,
    }


def interpret(response: Response) -> Outcome:
    """Outcome of a 2xx reply. Details never quote the reply, which may echo the token."""
    try:
        reply = response.json()
    except ValueError:  # includes an empty body and undecodable bytes
        return Retriable("malformed_response", f"HTTP {response.status_code}, body not JSON")
    if not isinstance(reply, dict) or not isinstance(reply.get("error"), bool):
        return Retriable("malformed_response", f"HTTP {response.status_code}, no boolean 'error'")
    if not reply["error"]:
        return Delivered()
    message = reply.get("message")
    if isinstance(message, str) and _AUTH_MESSAGE.search(message):
        return Permanent("auth", "error: true, session or token refused")
    return Permanent("rejected", "error: true")


class MyfxbookAdapter:
    def __init__(self, name: str, settings: MyfxbookSettings, context: AdapterContext) -> None:
        self.name = name
        self._settings = settings
        self._context = context

    async def deliver(self, trace: Trace, idempotency_key: str) -> Outcome:
        """Post once within MYFXBOOK_TIMEOUT_SECONDS; never raises."""
        s = self._settings
        content = encode_json(body(trace))
        if isinstance(content, Permanent):
            return content
        headers = {
            "Authorization": f"Bearer {s.webhook_token.get_secret_value()}",
            "Idempotency-Key": idempotency_key,
        }
        response = await post_bytes(
            self._context.http, str(s.webhook_url), content, headers, s.timeout_seconds
        )
        if isinstance(response, Retriable):
            return response
        outcome = classify(response, self._context.clock())
        return interpret(response) if isinstance(outcome, Delivered) else outcome

    async def aclose(self) -> None:
        return None


def create(context: AdapterContext) -> MyfxbookAdapter:
    return MyfxbookAdapter(context.name, load(MyfxbookSettings), context)
