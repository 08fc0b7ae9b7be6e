from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import canaries, trade_event
from trace_stream import codec
from trace_stream.ingest import Limits, Reject, Schedule, Skip, plan
from trace_stream.records import Origin
from trace_stream.registry import RegistryUnavailable

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


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RLO = "\u202e"  # right-to-left override


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"trade_id": ""}, "trade_id: missing"),
        ({"signal_id": "  "}, "signal_id: missing"),
        ({"trade_id": "T" * 129}, "trade_id: longer than 128 characters"),
        ({"instrument": "EURUSD" * 40_000}, "instrument: longer than 64 characters"),
        ({"instrument": f"EUR{RLO}USD"}, "instrument: holds a control or format character"),
        ({"signal_id": "SIG\x00-1"}, "signal_id: holds a control or format character"),
        ({"status": "open"}, "status: not closed"),
        ({"side": "HOLD"}, "side: not BUY or SELL"),
        ({"entry_price": -1.0}, "entry_price: must be a number above 0 and at most 1e+12"),
        ({"exit_price": 0.0}, "exit_price: must be a number above 0 and at most 1e+12"),
        ({"volume": 1e308}, "volume: must be a number above 0 and at most 1e+12"),
        ({"volume": float("inf")}, "volume: must be a number above 0 and at most 1e+12"),
        ({"volume": float("nan")}, "volume: must be a number above 0 and at most 1e+12"),
        ({"profit_loss": float("nan")}, "profit_loss: must be a number between"),
        ({"profit_loss": -2e15}, "profit_loss: must be a number between"),
        (
            {"opened_at": NOW + timedelta(hours=1), "closed_at": NOW},
            "closed_at: before opened_at",
        ),
        (
            {"closed_at": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
            "closed_at: more than 0:05:00 in the future (TRACE_MAX_CLOCK_SKEW)",
        ),
        (
            {"closed_at": NOW + timedelta(days=3652)},
            "closed_at: more than 0:05:00 in the future",
        ),
        ({"closed_at": NOW + timedelta(days=1)}, "closed_at: more than 0:05:00 in the future"),
        (
            {"closed_at": datetime(1969, 12, 31, tzinfo=UTC)},
            "closed_at: before 2000-01-01T00:00:00+00:00 (TRACE_EARLIEST_CLOSE)",
        ),
        (
            {"opened_at": datetime(1999, 12, 31, 23, 59, tzinfo=UTC)},
            "opened_at: before 2000-01-01T00:00:00+00:00",
        ),
        ({"tracing_adapters": ["webhook"] * 33}, "tracing_adapters: more than 32"),
    ],
)
def test_invalid_events_are_rejected_naming_the_field_never_the_value(overrides, detail) -> None:
    event = {**trade_event("T-bad", closed_at=NOW - timedelta(minutes=1)), **overrides}
    p = run(event, now=NOW)
    assert isinstance(p, Reject)
    letter = p.letter
    assert letter.reason == "invalid_event"
    assert detail in letter.detail
    assert letter.origin == ORIGIN
    text = codec.encode_dead_letter(letter).decode("latin-1") + letter.detail
    for value in canaries("T-bad").values():
        assert value not in text
    assert "EURUSDEURUSDEURUSD" not in letter.detail and RLO not in letter.detail
    json.loads(letter.redacted or "", parse_constant=_no_constants)  # strict JSON


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_bounds_are_inclusive_and_follow_the_settings() -> None:
    edge = {
        "closed_at": NOW + timedelta(minutes=5),  # exactly the allowed skew
        "opened_at": datetime(2000, 1, 1, tzinfo=UTC),
        "volume": 1e12,
        "profit_loss": -1e15,
        "trade_id": "T" * 128,
        "instrument": "X" * 64,
    }
    assert isinstance(run({**trade_event("T-edge"), **edge}, now=NOW), Schedule)
    late = trade_event("T-skew", closed_at=NOW + timedelta(minutes=9))
    assert isinstance(run(late, now=NOW), Reject)
    wide = Limits(max_clock_skew=timedelta(minutes=10), earliest=datetime(1990, 1, 1, tzinfo=UTC))
    assert isinstance(run(late, now=NOW, limits=wide), Schedule)
    old = trade_event("T-old", closed_at=datetime(1995, 1, 1, tzinfo=UTC))
    assert isinstance(run(old, now=NOW, limits=wide), Schedule)


def test_an_unforeseen_failure_is_a_dead_letter_and_a_dependency_failure_is_not() -> None:
    def broken(_: bytes) -> dict[str, Any]:
        return {**trade_event("T-odd"), "closed_at": "not a time"}  # a decoder's bug

    p = run(trade_event("T-odd"), decode=broken)
    assert isinstance(p, Reject)
    assert p.letter.reason == "invalid_event"
    assert "closed_at: not a UTC timestamp" in p.letter.detail

    class Boom:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    p = run(trade_event("T-odd"), decode=lambda _: {**trade_event("T-odd"), "status": Boom()})
    assert isinstance(p, Reject)
    assert p.letter.reason == "unprocessable"
    assert p.letter.detail == "RuntimeError while validating or redacting"

    def down(_: bytes) -> dict[str, Any]:
        raise RegistryUnavailable("schema registry: ConnectError")

    with pytest.raises(RegistryUnavailable):
        run(trade_event("T-1"), decode=down)


def test_garbage_and_tombstones_are_rejected_as_undecodable() -> None:
    for value in (b"\x02garbage", None):
        p = run(value)
        assert isinstance(p, Reject)
        assert p.letter.reason == "undecodable"
        assert p.letter.redacted is None
