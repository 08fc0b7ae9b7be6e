from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import canaries, trade_event
from trace_stream import codec
from trace_stream.ingest import Reject, Schedule, Skip, plan
from trace_stream.records import Origin

ORIGIN = Origin(topic="trade.closed", partition=3, offset=42)
ENABLED = frozenset({"webhook", "file"})


def run(event: dict[str, Any] | bytes | None, **kw: Any) -> Schedule | Skip | Reject:
    value = codec.encode("trade_closed", event) if isinstance(event, dict) else event
    defaults = {
        "enabled_adapters": ENABLED,
        "delay": timedelta(minutes=5),
        "now": datetime.now(UTC),
    }
    return plan(value, ORIGIN, **{**defaults, **kw})


def test_due_time_comes_from_closed_at_not_from_read_time() -> None:
    closed = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    read_much_later = closed + timedelta(days=2)
    p = run(trade_event("T-1", closed_at=closed), now=read_much_later)
    assert isinstance(p, Schedule)
    assert p.delivery.due_at == closed + timedelta(minutes=5)


def test_schedules_only_adapters_both_requested_and_enabled() -> None:
    p = run(trade_event("T-1", tracing_adapters=["myfxbook", "webhook", "file"]))
    assert isinstance(p, Schedule)
    assert p.delivery.adapters == ("file", "webhook")
    assert p.delivery.attempt == 0
    assert p.delivery.origin == ORIGIN


def test_not_opted_in_is_skipped() -> None:
    assert run(trade_event("T-1", tracing_opt_in=False)) == Skip("not_opted_in")


def test_no_enabled_adapter_is_skipped() -> None:
    assert run(trade_event("T-1", tracing_adapters=["myfxbook"])) == Skip("no_enabled_adapter")


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"trade_id": ""}, "trade_id: missing"),
        ({"status": "open"}, "status: not closed"),
        ({"side": "HOLD"}, "side: not BUY or SELL"),
        ({"entry_price": -1.0}, "entry_price: must be a positive number"),
        ({"exit_price": -0.5}, "exit_price: must be a positive number"),
        ({"volume": 0.0}, "volume: must be a positive number"),
        ({"profit_loss": float("nan")}, "profit_loss: must be a finite number"),
        (
            {
                "opened_at": datetime(2026, 1, 2, tzinfo=UTC),
                "closed_at": datetime(2026, 1, 1, tzinfo=UTC),
            },
            "closed_at: before opened_at",
        ),
    ],
)
def test_invalid_events_are_rejected_with_a_reason_and_no_personal_data(overrides, detail) -> None:
    p = run({**trade_event("T-bad"), **overrides})
    assert isinstance(p, Reject)
    letter = p.letter
    assert letter.reason == "invalid_event"
    assert detail in letter.detail
    assert letter.origin == ORIGIN
    text = codec.encode_dead_letter(letter).decode("latin-1") + letter.detail
    for value in canaries("T-bad").values():
        assert value not in text


def test_garbage_and_tombstones_are_rejected_as_undecodable() -> None:
    for value in (b"\x02garbage", None):
        p = run(value)
        assert isinstance(p, Reject)
        assert p.letter.reason == "undecodable"
        assert p.letter.redacted is None
