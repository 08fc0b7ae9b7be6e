"""Time is injected: every component that reads the time takes a `Clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns an aware UTC datetime."""


def utc_now() -> datetime:
    return datetime.now(UTC)
