"""Shared HTTP posting and response classification for HTTP adapters.

Retriable: connection errors, timeouts, 408, 425, 429 and 5xx. Permanent: any
other 4xx (401/403 as `auth`). A `Retry-After` header is passed on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .base import Delivered, Outcome, Permanent, Retriable

RETRIABLE_4XX = frozenset({408, 425, 429})


def retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.astimezone(UTC) - now, timedelta(0))


def classify(response: httpx.Response, now: datetime) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Delivered()
    detail = f"HTTP {code}"
    if code == 429:
        return Retriable("rate_limited", detail, retry_after(response, now))
    if code in RETRIABLE_4XX or code >= 500:
        return Retriable("server_error", detail, retry_after(response, now))
    if code in (401, 403):
        return Permanent("auth", detail)
    return Permanent("rejected", detail)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    headers: dict[str, str],
    timeout: float,
) -> httpx.Response | Retriable:
    """POST; transport failures become Retriable (detail names the exception type only)."""
    try:
        return await client.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        return Retriable("timeout", type(exc).__name__)
    except httpx.TransportError as exc:
        return Retriable("connection", type(exc).__name__)
