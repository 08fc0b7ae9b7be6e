"""A real HTTP tracker on loopback that records every request it receives.

Responses are scripted per request (`respond`), so tests can make it fail a few
times, throttle with Retry-After, reject auth, or hang past a timeout. With
`limit_rate(n)` it enforces a rate limit of its own, as a tracker's API does: a token
bucket of `n` a second (bursts of `n`); a request beyond it gets a 429.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the request arrived
    path: str
    headers: httpx.Headers  # case-insensitive, as HTTP headers are
    body: bytes
    status: int  # what the tracker answered

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    """The listen backlog (socketserver's default is 5): a service opening dozens of
    connections at once on a busy machine would otherwise see some refused."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout) is no error of the tracker's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Tracker:
    def __init__(self, default: Reply | None = None) -> None:
        self.received: list[Received] = []
        self.default = default or Reply()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        """The most requests it was answering at once."""
        self.on_request: Callable[[Received], None] | None = None
        self.decide: Callable[[str, bytes], Reply] | None = None  # (path, body) -> reply
        self._rate: float | None = None
        self._retry_after: str | None = None
        self._tokens = 0.0
        self._refilled = 0.0
        tracker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                tracker._enter()
                try:
                    self._answer(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout) before a slow reply
                finally:
                    tracker._leave()

            def _answer(self, body: bytes) -> None:
                reply = tracker._reply(self.path, body)
                got = Received(
                    time.time(),
                    self.path,
                    httpx.Headers(list(self.headers.items())),
                    body,
                    reply.status,
                )
                tracker._record(got)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *_: Any) -> None:
                return

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval keeps stop() (and so every test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def limit_rate(self, per_second: float | None, retry_after: str | None = None) -> None:
        """Answer 429 (with this Retry-After, if any) beyond `per_second` requests a
        second, bursts of as many; None: no limit."""
        with self._lock:
            self._rate, self._retry_after = per_second, retry_after
            self._tokens, self._refilled = per_second or 0.0, time.monotonic()

    def _over_the_limit(self) -> bool:
        """Called with the lock held: take a token, or say there is none."""
        if self._rate is None:
            return False
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            return True
        self._tokens -= 1
        return False

    def _reply(self, path: str, body: bytes) -> Reply:
        with self._lock:
            if self._over_the_limit():
                after = {"Retry-After": self._retry_after} if self._retry_after else {}
                return Reply(429, b'{"error": "rate limited"}', after)
            if self._script:
                return self._script.popleft()
        return self.decide(path, body) if self.decide else self.default

    def _record(self, got: Received) -> None:
        with self._lock:
            self.received.append(got)
        if self.on_request:
            self.on_request(got)

    def respond(self, *replies: Reply) -> None:
        """Queue replies for the next requests; after them, `default` answers."""
        with self._lock:
            self._script.extend(replies)

    def requests(self, path: str | None = None, *, ok: bool | None = None) -> list[Received]:
        """Requests received so far, optionally only those on `path` / answered 2xx or not."""
        with self._lock:
            return [
                r
                for r in self.received
                if (path is None or r.path == path) and (ok is None or r.ok == ok)
            ]

    def start(self) -> Tracker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
