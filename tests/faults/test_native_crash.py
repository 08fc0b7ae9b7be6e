"""The native crash once seen right after a broker restart: reading a group's committed
offsets while its coordinator answers "load in progress" crashed librdkafka through
AdminClient.list_consumer_group_offsets. The service reads them through a consumer
handle of the group (`kafka.reader.Reader.committed`). Here that read runs in a loop
in its own process across broker restarts, the moment that triggered the crash: the
process must end by itself with exit 0, never by a signal."""

from __future__ import annotations

import subprocess
import sys

from devenv.broker import LocalKafka
from tests.support import ROOT, make_settings, publish, trade_event

RESTARTS = 3

_READER = """
import sys, time
from trace_stream.core.errors import KafkaError
from trace_stream.kafka import Reader
reader = Reader({"bootstrap.servers": sys.argv[1], "log_level": 0})
deadline = time.monotonic() + float(sys.argv[3])
reads = 0
while time.monotonic() < deadline:
    try:
        reader.committed(sys.argv[2], [(sys.argv[4], 0)], timeout=1)
        reads += 1
    except KafkaError:
        pass  # the broker is restarting: ask again
print(reads)
"""


def test_reading_committed_offsets_across_restarts_never_crashes(
    fault_broker: LocalKafka,
) -> None:
    settings = make_settings(fault_broker.bootstrap)
    publish(settings, trade_event("T-1"))
    for _ in range(RESTARTS):
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _READER,
                fault_broker.bootstrap,
                f"{settings.trace_group_id}.deliver.webhook",
                "25",
                settings.trace_input_topic,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        fault_broker.halt()
        fault_broker.resume()  # the reader asks while the coordinator loads
        out, err = reader.communicate(timeout=90)
        assert reader.returncode == 0, f"exit {reader.returncode}: {err[-2000:]}"
        assert int(out) > 0, "no read succeeded after the restart"
