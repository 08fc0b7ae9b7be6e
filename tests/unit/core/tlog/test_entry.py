"""The canonical entry: stable bytes, the documented forms, nothing else accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.adapters.harness import make_trace
from trace_stream.core.tlog import entry


def test_the_documented_encoding() -> None:
    trace = make_trace(3, datetime(2025, 11, 20, 9, 30, 0, 250000, tzinfo=UTC)).model_copy(
        update={"volume": 100.0, "profit_loss": 1e-07, "instrument": "DAX\u00e9"}
    )
    expected = (
        '{"closed_at":"2025-11-20T09:30:00.250000Z","entry_price":1.08423,'
        '"exit_price":1.08761,"instrument":"DAX\u00e9",'
        '"opened_at":"2025-11-20T07:30:00.250000Z",'
        '"profit_loss":1e-07,"side":"BUY","signal_id":"sig-eurusd-momentum",'
        '"trade_id":"trade-000003","volume":100.0}'
    )
    assert entry.encode(trace) == expected.encode()
    assert entry.decode(entry.encode(trace)) == trace


def test_a_non_canonical_entry_is_refused() -> None:
    data = entry.encode(make_trace(1))
    with pytest.raises(ValueError, match="canonical"):
        entry.decode(data.replace(b'"volume":1.5', b'"volume":1.50'))
    with pytest.raises(ValueError, match="user_id"):  # a field a trace never has
        entry.decode(data[:-1] + b',"user_id":"u"}')
