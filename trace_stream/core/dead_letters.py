"""Every dead letter is built here (`dead_letter`), with its reason from the closed
set in `core.reasons`."""

from __future__ import annotations

from datetime import datetime

from trace_stream.core.reasons import Reason
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery


def dead_letter(
    reason: Reason,
    detail: str,
    *,
    origin: Origin,
    at: datetime,
    adapter: str | None = None,
    delivery: TraceDelivery | None = None,
    redacted: str | None = None,
) -> DeadLetter:
    """The one way to build a dead letter. `detail` names fields, rules, status codes
    and exception types, never a value; `redacted` holds only allow-listed fields."""
    return DeadLetter(
        reason=reason,
        detail=detail,
        adapter=adapter,
        dead_at=at,
        origin=origin,
        delivery=delivery,
        redacted=redacted,
    )
