"""Where a replay starts and stops: `--from`/`--to` parsed, then turned into per-partition
offset ranges of a topic.

Times are Kafka record timestamps (when the event was written to the topic), not the
trade's `closed_at`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from trace_stream.core.errors import ConfigError
from trace_stream.core.messages import TP
from trace_stream.kafka import Reader

Start = datetime | int | dict[int, int]
"""A time, one offset for every partition, or an offset per listed partition."""


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2026-11-24T10:00:00Z`); a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time like 2026-11-24T10:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_start(text: str) -> Start:
    """`--from`: a time (see parse_time), an offset (`120`) or `P:OFFSET,...` (`0:120,1:98`)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if ":" in text and all(_is_pair(part) for part in text.split(",")):
        pairs = (part.split(":") for part in text.split(","))
        return {int(p): int(o) for p, o in pairs}
    return parse_time(text)


def _is_pair(part: str) -> bool:
    p, _, o = part.strip().partition(":")
    return p.isdigit() and o.isdigit()


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def ranges(r: Reader, topic: str, start: Start, stop: datetime | None) -> dict[TP, tuple[int, int]]:
    """[first, end) offsets to read per partition, clamped to what the topic holds now.

    `stop` None means the current end. Partitions left out of a `P:OFFSET` list are
    not read; a listed partition the topic does not have is a ConfigError.
    """
    tps = r.partitions(topic)
    if isinstance(start, dict):
        unknown = sorted(set(start) - {p for _, p in tps})
        if unknown:
            raise ConfigError(
                f"--from: {topic} has no partition {unknown[0]} (it has 0-{len(tps) - 1})"
            )
        tps = [(topic, p) for p in sorted(start)]
    marks = r.watermarks(tps)
    if isinstance(start, datetime):
        first = r.offsets_for_time(tps, epoch_ms(start))
    elif isinstance(start, int):
        first = {tp: start for tp in tps}
    else:
        first = {(topic, p): o for p, o in start.items()}
    end = r.offsets_for_time(tps, epoch_ms(stop)) if stop else {tp: marks[tp][1] for tp in tps}
    out = {}
    for tp in tps:
        low, high = marks[tp]
        out[tp] = (min(max(first[tp], low), high), min(max(end[tp], low), high))
    return out
