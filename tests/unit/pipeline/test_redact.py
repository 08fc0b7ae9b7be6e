from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import canaries, trade_event
from trace_stream.core.records import Trace
from trace_stream.pipeline.redact import ALLOWED_FIELDS, MAX_TEXT, redact, redacted_json


def test_keeps_exactly_the_allow_listed_fields() -> None:
    trace = redact(trade_event("T-1"))
    assert set(trace.model_dump()) == set(ALLOWED_FIELDS) == set(Trace.model_fields)
    dumped = trace.model_dump_json()
    for value in canaries("T-1").values():
        assert value not in dumped
    for dropped in ("fees", "currency", "status", "tracing_opt_in", "tracing_adapters"):
        assert dropped not in dumped


def test_unknown_new_field_is_dropped_not_passed_through() -> None:
    event = trade_event("T-2", user_phone="+44 canary phone", kyc_level="3")
    dumped = redact(event).model_dump_json()
    assert "canary phone" not in dumped
    assert "kyc_level" not in dumped


def test_trade_facts_survive_unchanged() -> None:
    closed = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    trace = redact(trade_event("T-3", closed_at=closed, side="sell", volume=2.5))
    assert trace.closed_at == closed
    assert trace.side == "SELL"
    assert trace.volume == 2.5


def test_redacted_json_for_dead_letters_holds_no_personal_field() -> None:
    text = redacted_json({**trade_event("T-4"), "exit_price": -1.0})
    assert '"exit_price": -1.0' in text
    for value in canaries("T-4").values():
        assert value not in text


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_redacted_json_is_strict_json_whatever_the_values() -> None:
    event = {
        **trade_event("T-5"),
        "volume": float("nan"),
        "entry_price": float("inf"),
        "exit_price": float("-inf"),
        "profit_loss": 10**5000,  # beyond any Avro long: null, never a 5,000-digit number
        "closed_at": datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "opened_at": datetime(1969, 12, 31, tzinfo=UTC),
        "instrument": "\u202e" * 200_000,
        "side": b"BUY",
        "signal_id": ["a", "b"],
    }
    kept = _strict(redacted_json(event))
    assert kept["volume"] is kept["entry_price"] is kept["exit_price"] is None
    assert kept["profit_loss"] is None
    assert kept["closed_at"] == "9999-12-31T23:59:59.999000+00:00"
    assert kept["opened_at"] == "1969-12-31T00:00:00+00:00"
    assert kept["instrument"] == "\u202e" * MAX_TEXT + "…"
    assert kept["side"] == "<bytes>" and kept["signal_id"] == "<list>"
    assert redacted_json(event).isascii()  # a right-to-left override is escaped, not raw
    assert set(kept) == set(ALLOWED_FIELDS)


def test_text_at_the_bound_is_kept_whole() -> None:
    assert _strict(redacted_json({"trade_id": "T" * MAX_TEXT}))["trade_id"] == "T" * MAX_TEXT


class _Hostile(dict[str, Any]):
    def __contains__(self, key: object) -> bool:
        raise RuntimeError("canary")


class _Weird(str):
    def __str__(self) -> str:
        raise RuntimeError("canary")


ODD = {"trade_id": _Weird("x"), "volume": -(2**63), "exit_price": 2**63, "side": object()}


@pytest.mark.parametrize(
    "event", [None, 42, "text", b"bytes", [1, 2], object(), {}, _Hostile(trade_id="x"), ODD]
)
def test_redacted_json_never_raises_for_any_input(event: Any) -> None:
    kept = _strict(redacted_json(event))
    assert isinstance(kept, dict)
    assert "canary" not in json.dumps(kept)
