"""Pure: a decoded trade.closed event -> a Trace, by an allow-list of fields.

Anything not on the list is dropped, including fields added to the event in the
future, so a new personal field upstream cannot leak by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def redacted_json(event: Mapping[str, Any]) -> str:
    """The allow-listed fields that are present, as JSON, for dead letters of invalid events."""
    kept = {name: event[name] for name in ALLOWED_FIELDS if name in event}
    return json.dumps(kept, default=str, sort_keys=True)
