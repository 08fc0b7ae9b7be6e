"""The canonical encoding of a ledger entry: one redacted trade as posted, as JSON bytes.

An entry is the JSON object of the `Trace` fields (trade_id, signal_id, instrument, side,
volume, entry_price, exit_price, opened_at, closed_at, profit_loss) and nothing else:

- keys sorted by code point, no whitespace (separators `,` and `:`), UTF-8, non-ASCII
  characters written as themselves, not as `\\u` escapes;
- numbers as the shortest decimal that reads back as the same IEEE 754 double (Python's
  `repr`, e.g. `0.1`, `1e-07`, `100.0`); NaN and infinities are refused;
- times as ISO 8601 in UTC with a `Z`: `2025-11-21T09:30:00Z`, or with 6 fractional
  digits when the time has microseconds (`2025-11-21T09:30:00.250000Z`); a time without
  an offset is taken as UTC.

The same trade always encodes to the same bytes, so anyone can re-encode a trade and
find its leaf (SHA-256(0x00 || entry)) in the log.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from trace_stream.core.records import Trace


def _time(t: datetime) -> str:
    utc = t.astimezone(UTC) if t.tzinfo else t
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return utc.strftime(fmt)


def encode(trace: Trace) -> bytes:
    fields: dict[str, Any] = {
        k: _time(v) if isinstance(v, datetime) else v for k, v in trace.model_dump().items()
    }
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def decode(entry: bytes) -> Trace:
    """The trade of an entry; ValueError if it is not a canonical entry."""
    trace = Trace.model_validate_json(entry)
    if encode(trace) != entry:
        raise ValueError("entry: not in the canonical encoding")
    return trace
