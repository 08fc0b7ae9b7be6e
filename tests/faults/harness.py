"""What the fault tests share: a steady stream of trades, a supervisor that restarts the
service like Kubernetes would, and the figures each test proves."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import cast

import httpx

from devenv.tracker import Tracker
from tests.support import Process, read_topics, trade_event
from trace_stream import codec
from trace_stream.core.messages import OutRecord
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.settings import Settings


class Stream:
    """Publishes `count` trades at `rate` per second on a background thread, closed now;
    keeps each trade's due time. Producing goes on through a broker outage (the
    producer queues and retries)."""

    def __init__(self, settings: Settings, count: int, rate: float) -> None:
        self.settings = settings
        self.count = count
        self.rate = rate
        self.due: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = Producer(self.settings.kafka_config())
        start = time.monotonic()
        for i in range(self.count):
            while (ahead := start + i / self.rate - time.monotonic()) > 0:
                time.sleep(min(ahead, 0.01))
            closed = datetime.now(UTC)
            closed = closed.replace(microsecond=closed.microsecond // 1000 * 1000)  # Avro: ms
            event = trade_event(f"F-{i:05d}", closed_at=closed)
            self.due[event["trade_id"]] = (closed + self.settings.delay).timestamp()
            value = codec.encode("trade_closed", event)
            key = event["trade_id"].encode()
            producer.produce(OutRecord(self.settings.trace_input_topic, value, key=key))
        producer.flush(300)

    def done(self) -> bool:
        return not self._thread.is_alive()


class Supervisor:
    """Runs `trace-stream run` and, as Kubernetes would, starts it again whenever it
    exits non-zero (a crash, an exit on a long outage, a SIGKILL). Explicit on purpose:
    a test shows what supervises the service."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.exits: list[int] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.proc = Process(env, log)
        self._watcher = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            with self._lock:
                code = self.proc.proc.poll()
                if code is not None and code != 0 and not self._stopping.is_set():
                    self.exits.append(code)
                    self.proc.close()
                    self.proc = Process(self.env, self.log)

    @property
    def restarts(self) -> int:
        return len(self.exits)

    def kill(self) -> None:
        """SIGKILL the running process; the watcher restarts it."""
        with self._lock:
            self.proc.proc.send_signal(signal.SIGKILL)

    def alive(self) -> bool:
        with self._lock:
            return self.proc.proc.poll() is None

    def stop(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM and wait up to `timeout` s: (exit code or None if still running, seconds)."""
        self._stopping.set()
        self._watcher.join(5)
        started = time.monotonic()
        if self.proc.proc.poll() is not None:  # stopped already
            return self.proc.proc.returncode, 0.0
        self.proc.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        self.proc.close()
        return code, took


class Readiness:
    """Polls a service's /readyz twice a second on a background thread; keeps
    (monotonic time, HTTP status or 0 when nothing answered)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/readyz"
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                status = httpx.get(self.url, timeout=1).status_code
            except httpx.HTTPError:
                status = 0
            self.seen.append((time.monotonic(), status))

    def between(self, start: float, end: float) -> set[int]:
        return {status for at, status in self.seen if start <= at <= end}

    def now(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Figures:
    sent: int
    delivered: int
    lost: int
    early: int
    duplicates: int
    same_keys: bool
    dead_lettered: int
    restarts: int
    recovered_after: float | None = None

    def __str__(self) -> str:
        keys = "all same key" if self.same_keys else "KEYS DIFFER"
        text = (
            f"{self.sent} sent, {self.delivered} delivered, {self.lost} lost, "
            f"{self.early} early, {self.duplicates} duplicate posts ({keys}), "
            f"{self.dead_lettered} dead-lettered, {self.restarts} restarts"
        )
        if self.recovered_after is not None:
            text += f", recovered {self.recovered_after:.1f} s after broker up"
        return text

    def sound(self) -> bool:
        """Nothing lost, nothing early, every duplicate with its trade's key."""
        return self.lost == 0 and self.early == 0 and self.same_keys


def figures(
    stream: Stream,
    tracker: Tracker,
    restarts: int,
    broker_up: float | None = None,
    dead_letters: bool = False,
) -> Figures:
    """From the tracker's accepted posts (and the dead-letter topic, when asked)."""
    ok = [r for r in tracker.requests(ok=True) if r.json()["trade_id"] in stream.due]
    posts = Counter(r.json()["trade_id"] for r in ok)
    keys: dict[str, set[str]] = {}
    for r in ok:
        keys.setdefault(r.json()["trade_id"], set()).add(r.headers["Idempotency-Key"])
    dead = set()
    if dead_letters:
        for m in read_topics(stream.settings, layout(stream.settings).dead_letter):
            letter = codec.decode_dead_letter(m.value() or b"")
            if letter.delivery is not None:
                dead.add(letter.delivery.trace.trade_id)
    recovered = None
    if broker_up is not None:
        after = [r.at for r in ok if r.at >= broker_up]
        recovered = min(after) - broker_up if after else None
    return Figures(
        sent=len(stream.due),
        delivered=len(posts),
        lost=len(stream.due.keys() - posts.keys() - dead),
        early=sum(1 for r in ok if r.at < stream.due[r.json()["trade_id"]]),
        duplicates=sum(posts.values()) - len(posts),
        same_keys=all(len(k) == 1 for k in keys.values()),
        dead_lettered=len(dead),
        restarts=restarts,
        recovered_after=recovered,
    )


def settled(stream: Stream, tracker: Tracker) -> bool:
    """Every trade of a finished stream accepted by the tracker."""
    if not stream.done():
        return False
    accepted = {r.json()["trade_id"] for r in tracker.requests(ok=True)}
    return accepted >= stream.due.keys()


class InFlight:
    """The service's requests in flight at a tracker, counted exactly.

    A request is in flight from its arrival until the tracker answers it or the client
    closes its connection. The most at once is taken as each request arrives, checking
    every unanswered one's socket for the client's close. That count never exceeds the
    posts the service has in flight: a post it gives up on (its timeout) has its
    connection closed while the cancellation unwinds, before the post's slot is free
    and so before the next post is sent, and on loopback the close is at the tracker
    at once; an answered request stops counting before the service reads the reply.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.most = 0
        self.abandoned = 0
        """Requests whose client closed the connection before they were answered."""
        self._lock = threading.Lock()
        self._open: dict[int, socket.socket] = {}  # per connection: one request at a time
        # The tracker's own handler, with the bookkeeping around it.
        base = cast(type[BaseHTTPRequestHandler], tracker._server.RequestHandlerClass)
        watch = self

        class Handler(base):  # type: ignore[valid-type, misc]
            def do_POST(self) -> None:
                watch._arrived(id(self), self.connection)
                try:
                    super().do_POST()
                finally:
                    watch._answered(id(self))

            def send_response(self, code: int, message: str | None = None) -> None:
                watch._answered(id(self))
                super().send_response(code, message)

        tracker._server.RequestHandlerClass = Handler

    def _arrived(self, connection_id: int, sock: socket.socket) -> None:
        with self._lock:
            self._open[connection_id] = sock
            now = sum(1 for s in self._open.values() if not _closed_by_peer(s))
            self.most = max(self.most, now)

    def _answered(self, connection_id: int) -> None:
        with self._lock:
            sock = self._open.pop(connection_id, None)
            if sock is not None and _closed_by_peer(sock):
                self.abandoned += 1


def _closed_by_peer(sock: socket.socket) -> bool:
    """The client closed (or reset) the connection: EOF is waiting to be read."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
