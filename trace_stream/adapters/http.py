"""Shared HTTP posting and response classification for HTTP adapters.

Retriable: connection errors, timeouts, 408, 425, 429 and 5xx. Gone: 410 (the
endpoint is gone for good: the adapter stops, the trades are kept). Permanent: any
other 4xx (401/403 as `auth`). A `Retry-After` header is passed on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pyreqwest import exceptions as reqwest_errors
from pyreqwest.client import Client

from trace_stream.adapters.base import Delivered, Gone, Outcome, Permanent, Retriable
from trace_stream.adapters.transport import SharedClient


@dataclass(frozen=True)
class Reply:
    """A reply read whole, from the pyreqwest path: what classification and adapters
    read of an `httpx.Response`."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive, as pyreqwest gives them
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


Response = httpx.Response | Reply

RETRIABLE_4XX = frozenset({408, 425, 429})


def retry_after(response: Response, now: datetime) -> timedelta | None:
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


def classify(response: Response, now: datetime) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Delivered()
    detail = f"HTTP {code}"
    if code == 429:
        return Retriable("rate_limited", detail, retry_after(response, now))
    if code in RETRIABLE_4XX or code >= 500:
        return Retriable("server_error", detail, retry_after(response, now))
    if code == 410:
        return Gone(detail)
    if code in (401, 403):
        return Permanent("auth", detail)
    return Permanent("rejected", detail)


def encode_json(body: Any) -> bytes | Permanent:
    """Compact UTF-8 JSON, the exact bytes to send (and sign).

    NaN and infinity have no JSON form; a body holding one can never be delivered,
    so it is Permanent rather than an exception.
    """
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        return Permanent("rejected", f"body not encodable as JSON: {type(exc).__name__}")
    return text.encode()


async def post_bytes(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    headers: dict[str, str],
    timeout: float,
) -> Response | Retriable:
    """POST `content` as JSON and read the reply, all within `timeout` seconds overall.

    httpx applies `timeout` per phase (connect, write, each read), so a server that
    trickles its reply could take several times longer; the outer deadline bounds the
    whole exchange. Transport failures become Retriable, with a detail naming the
    exception type only (httpx and pyreqwest messages can contain the URL). On the
    shared client the post goes to its pyreqwest client (see transport.py).
    """
    if isinstance(client, SharedClient):
        return await _post_reqwest(client.reqwest(), url, content, headers, timeout)
    try:
        async with asyncio.timeout(timeout):
            return await client.post(
                url,
                content=content,
                headers={"Content-Type": "application/json", **headers},
                timeout=timeout,
            )
    except (httpx.TimeoutException, TimeoutError) as exc:
        return Retriable("timeout", type(exc).__name__)
    except httpx.TransportError as exc:
        return Retriable("connection", type(exc).__name__)
    except httpx.HTTPError as exc:  # e.g. DecodingError of a malformed compressed reply
        return Retriable("unexpected", type(exc).__name__)


async def _post_reqwest(
    client: Client,
    url: str,
    content: bytes,
    headers: dict[str, str],
    timeout: float,
) -> Reply | Retriable:
    request = (
        client.post(url)
        .body_bytes(content)
        .headers({"Content-Type": "application/json", **headers})
        .timeout(timedelta(seconds=timeout))
        .build()
    )
    # reqwest's timeout bounds the whole exchange, connecting to the reply's last byte,
    # so no asyncio deadline is needed around it (one timer less per post: measured).
    try:
        response = await request.send()
        return Reply(response.status, response.headers, bytes(await response.bytes()))
    except TimeoutError as exc:  # pyreqwest's timeouts are TimeoutErrors
        return Retriable("timeout", type(exc).__name__)
    except (reqwest_errors.NetworkError, reqwest_errors.ClientClosedError) as exc:
        return Retriable("connection", type(exc).__name__)  # refused, reset, dropped
    except reqwest_errors.PyreqwestError as exc:  # e.g. a malformed or bad-gzip reply
        return Retriable("unexpected", type(exc).__name__)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    headers: dict[str, str],
    timeout: float,
) -> Response | Retriable | Permanent:
    """`post_bytes` of `encode_json(body)`."""
    content = encode_json(body)
    if isinstance(content, Permanent):
        return content
    return await post_bytes(client, url, content, headers, timeout)
