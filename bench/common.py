"""Pieces the benchmarks share: the broker, a counting tracker in its own process, a
process's CPU and memory from /proc, starting and stopping a process, a progress line.

Nothing here imports from `tests/`; trades and service settings are in `devenv/trades.py`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from devenv.broker import LocalKafka

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def broker() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a LocalKafka for the whole script."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield bootstrap
        return
    kafka = LocalKafka()
    try:
        yield kafka.start()
    finally:
        kafka.stop()


def get_json(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method)  # noqa: S310 (loopback http)
    with urllib.request.urlopen(request, timeout=5) as r:  # noqa: S310
        return json.load(r)


def _serve_counting(conn: Connection) -> None:
    """The tracker: answer 200 to every POST to /hook and count them, their distinct
    Idempotency-Keys and body trade ids, and the first and last arrival
    (`time.monotonic()`, a system-wide clock: comparable with the parent's). GET
    /count reads the figures, DELETE /count starts again. Runs until `conn` says stop."""
    keys: set[str] = set()
    trades: set[str] = set()
    stats = {"count": 0, "first": 0.0, "last": 0.0}

    async def post(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        stats["first"] = stats["first"] or now
        stats["last"] = now
        stats["count"] += 1
        keys.add(request.headers.get("Idempotency-Key", ""))
        trades.add(str(json.loads(body).get("trade_id")))
        return web.json_response({"ok": True})

    async def count(_: web.Request) -> web.Response:
        return web.json_response({**stats, "keys": len(keys), "trades": len(trades)})

    async def reset(_: web.Request) -> web.Response:
        keys.clear()
        trades.clear()
        stats.update(count=0, first=0.0, last=0.0)
        return web.json_response({})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", post)
        app.router.add_get("/count", count)
        app.router.add_delete("/count", reset)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(runner.addresses[0][1])
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
        await runner.cleanup()

    asyncio.run(main())


@dataclass(frozen=True)
class Tracker:
    url: str  # base URL; posts go to {url}/hook
    pid: int

    def count(self) -> dict[str, float]:
        return dict(get_json(f"{self.url}/count"))

    def reset(self) -> None:
        get_json(f"{self.url}/count", "DELETE")


@contextmanager
def counting_tracker() -> Iterator[Tracker]:
    """The counting tracker in a process of its own (spawned), stopped at the end."""
    with spawned_server(_serve_counting) as (url, pid):
        yield Tracker(url, pid)


@contextmanager
def spawned_server(serve: Callable[[Connection], None]) -> Iterator[tuple[str, int]]:
    """Run `serve(conn)` in a spawned process: it sends its port on `conn` once it
    listens and stops when it receives "stop". Yields (base URL, pid)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child,), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the tracker did not start within 30 s")
        yield f"http://127.0.0.1:{parent.recv()}", server.pid or 0
    finally:
        with suppress(OSError):  # it is gone already
            parent.send("stop")
        server.join(5)
        if server.is_alive():
            server.terminate()
            server.join(5)


@dataclass(frozen=True)
class Usage:
    rss_mib: float  # current resident set (VmRSS)
    peak_rss_mib: float  # peak resident set (VmHWM)
    cpu_s: float  # user + system CPU seconds so far


def usage(pid: int) -> Usage | None:
    """CPU and memory of a live process from /proc; None once it has exited (a
    zombie has no VmHWM)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    kib = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmHWM:", "VmRSS:"))
    }
    if "VmHWM" not in kib:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return Usage(kib["VmRSS"] / 1024, kib["VmHWM"] / 1024, ticks / os.sysconf("SC_CLK_TCK"))


def start_process(
    args: list[str], env: Mapping[str, str], log: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`args` as a process of its own, stdout and stderr into `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(args, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


def service_command() -> list[str]:
    return [sys.executable, "-m", "trace_stream.cli", "run"]


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 90) -> None:
    """Poll the service's /readyz until it answers 200; fail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:  # not listening yet, or 503: not ready
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited {proc.returncode} before ready") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service was not ready within {timeout} s") from None
            time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 40) -> int:
    """SIGTERM, SIGKILL after `timeout` s; return the exit code (negative: a signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


class Progress:
    """One line on stderr, rewritten in place (`\\r`) at most every 0.2 s."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.began = time.monotonic()
        self._shown = 0.0
        self._width = 0

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < 0.2:
            return
        self._shown = now
        share = min(1.0, done / self.total) if self.total else 1.0
        bar = "#" * round(share * 24)
        text = (
            f"\r{self.label:28} [{bar:24}] {done:>9,}/{self.total:,} "
            f"{now - self.began:6.1f} s {note}"
        )
        self._width = max(self._width, len(text))
        sys.stderr.write(text.ljust(self._width))
        sys.stderr.flush()

    def done(self, note: str = "") -> None:
        self.update(self.total, note, force=True)
        sys.stderr.write("\n")
        sys.stderr.flush()
