"""The native crash once seen right after a broker restart: reading a group's committed
offsets while its coordinator answers "load in progress" crashed librdkafka through
AdminClient.list_consumer_group_offsets. The service reads them through a consumer
handle of the group (`kafka.reader.Reader.committed`). Here that read runs in a loop
in its own process across broker restarts, the moment that triggered the crash: the
process must end with exit 0 when told to, never by a signal. Each round ends once
reads succeed again after the restart."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import IO

from devenv.broker import LocalKafka
from tests.support import ROOT, make_settings, publish, trade_event, wait_for
from trace_stream.settings import Settings

RESTARTS = 3
AFTER = 20
"""Reads that must succeed after a restart before the round ends: the reader has then
asked all through the coordinator's loading, the moment that crashed."""

_READER = """
import sys, threading, time
from trace_stream.core.errors import KafkaError
from trace_stream.kafka import Reader
reader = Reader({"bootstrap.servers": sys.argv[1], "log_level": 0})
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
deadline = time.monotonic() + float(sys.argv[3])
while not done.is_set() and time.monotonic() < deadline:
    try:
        reader.committed(sys.argv[2], [(sys.argv[4], 0)], timeout=1)
        print("read", flush=True)
    except KafkaError:
        pass  # the broker is restarting: ask again
"""


def test_reading_committed_offsets_across_restarts_never_crashes(
    fault_broker: LocalKafka,
) -> None:
    settings = make_settings(fault_broker.bootstrap)
    publish(settings, trade_event("T-1"))
    for _ in range(RESTARTS):
        _read_across_a_restart(fault_broker, settings)


def _read_across_a_restart(broker: LocalKafka, settings: Settings) -> None:
    command = [
        sys.executable,
        "-c",
        _READER,
        broker.bootstrap,
        f"{settings.trace_group_id}.deliver.webhook",
        "120",
        settings.trace_input_topic,
    ]
    pipe = subprocess.PIPE
    with subprocess.Popen(
        command, cwd=ROOT, text=True, stdin=pipe, stdout=pipe, stderr=pipe
    ) as reader:
        assert reader.stdin and reader.stdout and reader.stderr
        reads = _Lines(reader.stdout)
        try:
            wait_for(lambda: reads.count, timeout=60, what="a read before the restart")
            broker.halt()
            before = reads.count
            broker.resume()  # the reader asks while the coordinator loads
            wait_for(
                lambda: reads.count >= before + AFTER or reader.poll() is not None,
                timeout=90,
                what=f"{AFTER} reads after the restart",
            )
            reader.stdin.close()  # the reader's signal to stop
            reader.wait(timeout=30)
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait(10)
        reads.join(10)
        err = reader.stderr.read()
    assert reader.returncode == 0, f"exit {reader.returncode}: {err[-2000:]}"
    assert reads.count >= before + AFTER, "reads stopped after the restart"


class _Lines:
    """Counts the lines a child writes, read in a thread of their own."""

    def __init__(self, stream: IO[str]) -> None:
        self.count = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for _ in stream:
            self.count += 1

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
