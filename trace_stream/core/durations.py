"""Durations as the settings and topic names write them: 5s, 30m, 1h30m, 250ms, and
schedules of them, comma-separated (5s,30s,5m,30m,1h)."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """'5s', '30m', '1h30m', '250ms' -> timedelta; ValueError for anything else."""
    text = text.strip()
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 5s, 30m, 1h or 250ms")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def format_duration(delay: timedelta) -> str:
    """Compact, topic-name-safe form: 5s, 30m, 1h, 1m30s, 250ms."""
    ms = round(delay.total_seconds() * 1000)
    out = ""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out or "0ms"


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """'5s,30s,5m' -> (5 s, 30 s, 5 min)."""
    return tuple(parse_duration(part) for part in text.split(","))


def format_schedule(schedule: tuple[timedelta, ...]) -> str:
    return ",".join(format_duration(d) for d in schedule)
