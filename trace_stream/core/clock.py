"""Time is injected: every component that reads the time takes a `Clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns an aware UTC datetime."""


def utc_now() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)


def to_micros(at: datetime) -> int:
    """`at` (timezone-aware) as integer microseconds since the epoch, exactly."""
    return (at - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_millis(at: datetime) -> int:
    """`at` (timezone-aware) as whole milliseconds since the epoch, rounded down."""
    return (at - EPOCH) // _MILLISECOND


def from_millis(ms: int) -> datetime:
    """OverflowError past year 9999."""
    return EPOCH + timedelta(milliseconds=ms)
