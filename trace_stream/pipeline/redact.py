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

from trace_stream.core.records import Trace

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
_LONG = 2**63
"""Integers outside Avro's long, [-2**63, 2**63), become null like non-finite floats."""


def redacted_json(event: object) -> str:
    """The allow-listed fields that are present, as strict JSON, for dead letters of
    invalid events: non-finite numbers and integers beyond a long become null, times
    ISO 8601, text longer than MAX_TEXT is cut (ending in "…"), anything else its type's
    name in angle brackets. Never raises, whatever `event` is (not a mapping: `{}`)."""
    kept: dict[str, object] = {}
    if isinstance(event, Mapping):
        for name in ALLOWED_FIELDS:
            try:
                if name in event:
                    kept[name] = _plain(event[name])
            except Exception:  # a mapping or value that misbehaves: the letter still goes
                kept[name] = "<unreadable>"
    return json.dumps(kept, sort_keys=True, allow_nan=False)


def _plain(value: object) -> object:
    """A JSON value of a builtin type (json.dumps then cannot fail)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value) if -_LONG <= value < _LONG else None
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = str.__str__(value)  # a plain str, even from a subclass
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
    if isinstance(value, datetime):
        return datetime.isoformat(value)
    return f"<{type(value).__name__}>"
