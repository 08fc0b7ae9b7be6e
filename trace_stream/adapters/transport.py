"""The shared HTTP client: httpx's API over aiohttp's connection handling.

Chosen by measurement (bench/http_transport.py, loopback, concurrency 16): the
aiohttp transport served about 5x the requests/s of httpx's default transport at
a far lower p99, and spent less CPU on the asyncio loop that every adapter shares.

Differences from httpx's own transport that callers may notice:
- proxies from the environment (HTTP_PROXY...) are not used;
- `max_keepalive_connections` is not enforced (aiohttp keeps what the pool holds);
- the write timeout is not enforced; adapters bound each post with an overall deadline.

The posts of the hot path (one per trade) skip httpx and go straight to the same
aiohttp session (`SharedClient.session`, used by `http.post_bytes`): measured with
bench/throughput.py, httpx's own request and response layer, cookie handling and
URL merging among it, cost about a third of the service's CPU. Low-volume calls
(alerts, `check-config`) keep httpx's API. Neither side keeps cookies.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class _Transport(AiohttpTransport):
    """httpx-aiohttp 0.2 reports every aiohttp connection error, a refused connection or
    a dropped one included, as ConnectTimeout; restore the distinction so the failure
    reason (`connection` vs `timeout`) is right."""

    def get_client(self) -> aiohttp.ClientSession:
        # As httpx-aiohttp builds it (bounded pool, keep-alive expiry, httpx's TLS
        # context), and without a cookie jar: a tracker's Set-Cookie must not follow
        # later posts.
        connector = aiohttp.TCPConnector(
            limit=LIMITS.max_connections or 100,
            keepalive_timeout=LIMITS.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, opened on first use (on the loop that uses it)."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, asyncio.TimeoutError):
                raise
            # The message names the exception type only: aiohttp's messages name the host.
            raise httpx.ConnectError(type(cause).__name__, request=request) from cause


class SharedClient(httpx.AsyncClient):
    """httpx's API over the transport, plus the transport's aiohttp session for the
    hot path's posts."""

    def __init__(self) -> None:
        self._aiohttp = _Transport(limits=LIMITS)
        super().__init__(
            transport=self._aiohttp,
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,
        )

    def session(self) -> aiohttp.ClientSession:
        return self._aiohttp.session()


def http_client() -> SharedClient:
    """A client with a bounded pool, explicit timeouts and no redirects.

    Create it anywhere; its aiohttp session is opened on the first request, on the
    loop that makes it, and must be closed (`aclose`) on that same loop.
    """
    return SharedClient()
