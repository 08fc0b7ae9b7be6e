"""Liveness, readiness and /metrics on one small HTTP server.

/healthz: every stage's loop has come round within `stale_after` seconds (a stuck
          loop, a dead thread or a crashed stage fails it).
/readyz:  every stage's consumer has joined its group and received an assignment,
          which may be empty for a standby member beyond the partition count, and
          every stage reaches Kafka: its last transaction did not fail (or it has
          recovered since), its consumer does not report every broker down, and its
          loop came round within `ready_within` seconds (it is not blocked on Kafka);
          and, once `watch_kafka` is on, a broker answered the Kafka watch within
          `unreachable_after` seconds (`stages.reach`), whatever the stages are
          blocked in; and no adapter has stopped (`stopped`: its tracker answered
          410 Gone, so it sends nothing until a restart; the other adapters carry on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Health:
    def __init__(
        self,
        stages: Iterable[str] = (),
        stale_after: float = 60,
        ready_within: float = 15,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._stale_after = stale_after
        self._ready_within = ready_within
        now = clock()
        self._beats = dict.fromkeys(stages, now)
        self._joined: set[str] = set()
        self._cut_off: set[str] = set()
        self._started = False
        self._unreachable_after: float | None = None
        self._reached = now
        self._stopped: dict[str, str] = {}
        self._lock = threading.Lock()

    def watch(self, stages: Iterable[str]) -> None:
        """Add stages to wait for (before `started`: until then nothing is ready)."""
        with self._lock:
            now = self._clock()
            self._beats.update(dict.fromkeys(stages, now))

    def watch_kafka(self, unreachable_after: float = 3.0) -> None:
        """Not ready once no broker has answered (`reached`) for this many seconds."""
        with self._lock:
            self._unreachable_after = unreachable_after
            self._reached = self._clock()

    def reached(self) -> None:
        """A broker answered just now."""
        with self._lock:
            self._reached = self._clock()

    def started(self) -> None:
        """The stages run: from now on their loops must come round. Before, the service
        is alive but not ready (it waits for Kafka)."""
        with self._lock:
            now = self._clock()
            self._beats = dict.fromkeys(self._beats, now)
            self._reached = now
            self._started = True

    def beat(self, stage: str, reaches_kafka: bool = True) -> None:
        """The stage's loop came round; `reaches_kafka`: its Kafka clients work."""
        with self._lock:
            self._beats[stage] = self._clock()
            if reaches_kafka:
                self._cut_off.discard(stage)
            else:
                self._cut_off.add(stage)

    def stopped(self, adapter: str, why: str) -> None:
        """An adapter stopped sending for good (until a restart): not ready."""
        with self._lock:
            self._stopped.setdefault(adapter, why)

    def joined(self, stage: str) -> None:
        with self._lock:
            self._joined.add(stage)

    def live(self) -> tuple[bool, str]:
        now = self._clock()
        with self._lock:
            if not self._started:
                return (True, "starting")
            stale = [s for s, at in self._beats.items() if now - at > self._stale_after]
        return (not stale, f"stale: {','.join(stale)}" if stale else "ok")

    def stage_ready(self, stage: str) -> bool:
        """One stage's part of `ready`: assigned, reaching Kafka, its loop coming round."""
        now = self._clock()
        with self._lock:
            beat = self._beats.get(stage)
            return (
                self._started
                and stage in self._joined
                and stage not in self._cut_off
                and beat is not None
                and now - beat <= self._ready_within
            )

    def ready(self) -> tuple[bool, str]:
        now = self._clock()
        with self._lock:
            if not self._started:
                return (False, "starting: waiting for Kafka")
            waiting = sorted(set(self._beats) - self._joined)
            cut_off = sorted(self._cut_off)
            stuck = sorted(s for s, at in self._beats.items() if now - at > self._ready_within)
            silent = now - self._reached
            unreachable = self._unreachable_after is not None and silent > self._unreachable_after
            stopped = sorted(self._stopped.items())
        problems = [f"no Kafka broker answered for {silent:.0f} s"] if unreachable else []
        problems += [f"not assigned: {','.join(waiting)}"] if waiting else []
        problems += [f"Kafka unreachable: {','.join(cut_off)}"] if cut_off else []
        problems += [f"not progressing: {','.join(stuck)}"] if stuck else []
        problems += [f"adapter stopped: {name} ({why})" for name, why in stopped]
        return (not problems, "; ".join(problems) or "ok")


def serve(port: int, registry: CollectorRegistry, health: Health) -> ThreadingHTTPServer:
    """Start the server on a daemon thread; port 0 picks a free one (see server_port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.live() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, detail.encode() + b"\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
