"""Pure: a decoded trade.closed event -> a Trace, by an allow-list of fields.

Anything not on the list is dropped, including fields added to the event in the
future, so a new personal field upstream cannot leak by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .records import Trace

ALLOWED_FIELDS: tuple[str, ...] = (
    "trade_id",
    "signal_id",
    "instrument",
    "side",
    "volume",
    "entry_price",
    "exit_price",
    "opened_at",
    "closed_at",
    "profit_loss",
)


def redact(event: Mapping[str, Any]) -> Trace:
    """Build the Trace from the allow-listed fields only. The event must be valid."""
    kept = {name: event[name] for name in ALLOWED_FIELDS}
    kept["side"] = str(kept["side"]).upper()
    return Trace.model_validate(kept)


MAX_TEXT = 256
"""Characters kept of a text value in a dead letter (an invalid value can be huge)."""


def redacted_json(event: Mapping[str, Any]) -> str:
    """The allow-listed fields that are present, as strict JSON, for dead letters of
    invalid events: non-finite numbers become null, times ISO 8601, long text is cut,
    anything else its type's name. Never raises."""
    kept = {name: _plain(event[name]) for name in ALLOWED_FIELDS if name in event}
    return json.dumps(kept, sort_keys=True, allow_nan=False)


def _plain(value: object) -> object:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, datetime):
        return value.isoformat()
    return f"<{type(value).__name__}>"
