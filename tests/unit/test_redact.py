from __future__ import annotations

from datetime import UTC, datetime

from tests.support import canaries, trade_event
from trace_stream.records import Trace
from trace_stream.redact import ALLOWED_FIELDS, redact, redacted_json


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
