"""The shared HTTP client: httpx's API over aiohttp's connection handling.

Chosen by measurement (bench/http_transport.py, loopback, concurrency 16): the
aiohttp transport served about 5x the requests/s of httpx's default transport at
a far lower p99, and spent less CPU on the asyncio loop that every adapter shares.

Differences from httpx's own transport that callers may notice:
- proxies from the environment (HTTP_PROXY...) are not used;
- `max_keepalive_connections` is not enforced (aiohttp keeps what the pool holds);
- the write timeout is not enforced; adapters bound each post with an overall deadline.

The posts of the hot path (one per trade) skip httpx: measured with
bench/throughput.py, httpx's own request and response layer, cookie handling and
URL merging among it, cost about a third of the service's CPU. They go to a
pyreqwest client (`SharedClient.reqwest`, used by `http.post_bytes`): Rust's reqwest
on its own runtime threads, so the request and response work runs outside the GIL.
Measured with bench/http_transport.py (loopback, 64 in flight) it spent half the CPU
per request of a bare aiohttp session, and bench/throughput.py's webhook pipeline
confirmed it (docs/hot-path.md). Low-volume calls (alerts, `check-config`) keep
httpx's API over aiohttp. Neither side keeps cookies, follows redirects or reads
proxies from the environment.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pyreqwest.client import Client, ClientBuilder

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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, asyncio.TimeoutError):
                raise
            # The message names the exception type only: aiohttp's messages name the host.
            raise httpx.ConnectError(type(cause).__name__, request=request) from cause


def _reqwest() -> Client:
    """The hot path's client, bounded as the httpx side is: the same pool size, idle
    expiry and connect timeout, no redirects, no cookie store, no proxy."""
    builder = (
        ClientBuilder()
        .max_connections(LIMITS.max_connections)
        .pool_idle_timeout(timedelta(seconds=LIMITS.keepalive_expiry or 30))
        .connect_timeout(timedelta(seconds=TIMEOUT.connect or 5))
        .follow_redirects(False)
        .default_cookie_store(False)
        .no_proxy()
    )
    return builder.build()


class SharedClient(httpx.AsyncClient):
    """httpx's API over the aiohttp transport, plus a pyreqwest client for the hot
    path's posts."""

    def __init__(self) -> None:
        super().__init__(
            transport=_Transport(limits=LIMITS),
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,
        )
        self._reqwest: Client | None = None

    def reqwest(self) -> Client:
        """The pyreqwest client, built on first use (on the loop that uses it)."""
        if self._reqwest is None:
            self._reqwest = _reqwest()
        return self._reqwest

    async def aclose(self) -> None:
        if self._reqwest is not None:
            await self._reqwest.close()
            self._reqwest = None
        await super().aclose()


def http_client() -> SharedClient:
    """A client with a bounded pool, explicit timeouts and no redirects.

    Create it anywhere; its aiohttp session is opened on the first request, on the
    loop that makes it, and must be closed (`aclose`) on that same loop.
    """
    return SharedClient()
