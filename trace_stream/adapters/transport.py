"""The shared HTTP client: httpx's API over aiohttp's connection handling.

Chosen by measurement (bench/http_transport.py, loopback, concurrency 16): the
aiohttp transport served about 5x the requests/s of httpx's default transport at
a far lower p99, and spent less CPU on the asyncio loop that every adapter shares.

Differences from httpx's own transport that callers may notice:
- proxies from the environment (HTTP_PROXY...) are not used;
- `max_keepalive_connections` is not enforced (aiohttp keeps what the pool holds);
- the write timeout is not enforced; adapters bound each post with an overall deadline.
"""

from __future__ import annotations

import asyncio

import httpx
from httpx_aiohttp import AiohttpTransport

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class _Transport(AiohttpTransport):
    """httpx-aiohttp 0.2 reports every aiohttp connection error, a refused connection or
    a dropped one included, as ConnectTimeout; restore the distinction so the failure
    reason (`connection` vs `timeout`) is right."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, asyncio.TimeoutError):
                raise
            # The message names the exception type only: aiohttp's messages name the host.
            raise httpx.ConnectError(type(cause).__name__, request=request) from cause


def http_client() -> httpx.AsyncClient:
    """A client with a bounded pool, explicit timeouts and no redirects.

    Create it anywhere; its aiohttp session is opened on the first request, on the
    loop that makes it, and must be closed (`aclose`) on that same loop.
    """
    return httpx.AsyncClient(
        transport=_Transport(limits=LIMITS),
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )
