"""Kafka access for the operations commands: reach the broker with a one-line error,
then read whole partitions or offset ranges of a topic with a Reader (no group, no
commits), showing progress on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from trace_stream.core.errors import KafkaError, TraceStreamError
from trace_stream.core.messages import TP, Message
from trace_stream.kafka import Admin, Reader
from trace_stream.ops.progress import Progress
from trace_stream.settings import Settings

CONNECT_TIMEOUT: float | None = None
"""Seconds to wait for the broker's metadata before giving up with a clear error;
None: TRACE_KAFKA_TIMEOUT_SECONDS."""

Ranges = Mapping[TP, tuple[int, int]]


def quiet_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka settings, with librdkafka's own logging silenced: a command that
    fails prints one line saying what to fix, not one `%3|...|FAIL|` line per retry."""
    return {**settings.kafka_config(), "log_level": 0}


def unreachable(settings: Settings, timeout: float, exc: Exception) -> str:
    """The one-line message for a broker that did not answer: what, and what to check."""
    return (
        f"cannot reach Kafka at {settings.kafka_bootstrap_servers} within {timeout:g}s "
        f"({exc}); check KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL and the "
        "KAFKA_SASL_* settings, and that the broker is running"
    )


def topics_on_broker(settings: Settings, timeout: float | None = None) -> dict[str, int]:
    """Topic name -> partition count, within `timeout` (default CONNECT_TIMEOUT) seconds.
    Raises TraceStreamError with a one-line message when the broker does not answer."""
    if timeout is None:
        timeout = (
            settings.trace_kafka_timeout_seconds if CONNECT_TIMEOUT is None else CONNECT_TIMEOUT
        )
    try:
        return Admin(quiet_config(settings)).existing(timeout)
    except KafkaError as exc:
        raise TraceStreamError(unreachable(settings, timeout, exc)) from None


def require(settings: Settings, *topics: str) -> None:
    """Raise TraceStreamError, one line, if the broker is unreachable or a topic is missing."""
    existing = topics_on_broker(settings)
    missing = [t for t in topics if t not in existing]
    if missing:
        raise TraceStreamError(
            f"topic {', '.join(missing)} not found on {settings.kafka_bootstrap_servers}; "
            "check TRACE_INPUT_TOPIC / TRACE_TOPIC_PREFIX, or run: trace-stream topics ensure"
        )


@contextmanager
def reader(settings: Settings) -> Iterator[Reader]:
    """A Reader that is closed on exit. Call `require` first for a clear error."""
    r = Reader(quiet_config(settings))
    try:
        yield r
    finally:
        r.close()


def everything(r: Reader, topic: str) -> dict[TP, tuple[int, int]]:
    """Every partition of `topic` from its low to its current high watermark."""
    return dict(r.watermarks(r.partitions(topic)))


def read(r: Reader, ranges: Ranges, progress: Progress) -> Iterator[Message]:
    """The records of `ranges`, counting each one on `progress`, which is closed (the
    bar erased) when reading ends or fails. The total is a hint: transaction markers
    take offsets too, so the count may end short of it."""
    try:
        for m in r.read(ranges):
            progress.advance()
            yield m
    finally:
        progress.close()


def progress_for(ranges: Ranges, label: str) -> Progress:
    """A progress bar on stderr sized to the offsets in `ranges`."""
    total = sum(max(0, end - start) for start, end in ranges.values())
    return Progress(total, label, sys.stderr)
