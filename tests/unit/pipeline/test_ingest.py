from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import canaries, trade_event
from trace_stream import codec
from trace_stream.codec.registry import RegistryUnavailable
from trace_stream.core.records import Origin
from trace_stream.pipeline.ingest import Limits, Reject, Schedule, Skip, plan

ORIGIN = Origin(topic="trade.closed", partition=3, offset=42)
ENABLED = frozenset({"webhook", "file"})


def run(event: dict[str, Any] | bytes | None, **kw: Any) -> Schedule | Skip | Reject:
    value = codec.encode("trade_closed", event) if isinstance(event, dict) else event
    defaults = {
        "enabled_adapters": ENABLED,
        "delay": timedelta(minutes=5),
        "now": datetime.now(UTC),
        "decode": codec.decode_trade_closed,
    }
    return plan(value, ORIGIN, **{**defaults, **kw})


def run_any(event: dict[str, Any], **kw: Any) -> Schedule | Skip | Reject:
    """Through Avro when the schema can carry the values (text with a lone surrogate
    cannot be written), else as a decoder's output."""
    try:
        value = codec.encode("trade_closed", event)
    except UnicodeError:
        return run(b"not avro", decode=lambda _: event, **kw)
    return run(value, **kw)


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
SKEW = timedelta(minutes=5)
RLO = "\u202e"  # right-to-left override
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
AMOUNT = "must be a number above 0 and at most 1e+12"
FUTURE = "more than 0:05:00 in the future (TRACE_MAX_CLOCK_SKEW)"
FLOOR = "before 2000-01-01T00:00:00+00:00 (TRACE_EARLIEST_CLOSE)"
FORMAT = "holds a control or format character"
HUGE = f"EUR{RLO}USD" * 30_000  # 210 kB, with a right-to-left override

REJECTED = [
    # text: 1..128 (ids) or 1..64 (instrument) characters, not blank, no Cc/Cf/Zl/Zp/Co/Cs/Cn
    ({"trade_id": ""}, ["trade_id: missing"]),
    ({"signal_id": " \t "}, ["signal_id: only whitespace"]),
    ({"trade_id": "T" * 129}, ["trade_id: longer than 128 characters"]),
    ({"signal_id": "S" * 129}, ["signal_id: longer than 128 characters"]),
    ({"instrument": "X" * 65}, ["instrument: longer than 64 characters"]),
    ({"instrument": HUGE}, ["instrument: longer than 64 characters", f"instrument: {FORMAT}"]),
    ({"instrument": f"EUR{RLO}USD"}, [f"instrument: {FORMAT}"]),  # Cf
    ({"signal_id": "SIG\x00-1"}, [f"signal_id: {FORMAT}"]),  # Cc
    ({"trade_id": "T\x7f1"}, [f"trade_id: {FORMAT}"]),  # Cc (DEL)
    ({"trade_id": "T\u200b1"}, [f"trade_id: {FORMAT}"]),  # Cf (zero-width space)
    ({"trade_id": "\ufeffT1"}, [f"trade_id: {FORMAT}"]),  # Cf (byte-order mark)
    ({"instrument": "EUR\u2028USD"}, [f"instrument: {FORMAT}"]),  # Zl
    ({"instrument": "EUR\u2029USD"}, [f"instrument: {FORMAT}"]),  # Zp
    ({"instrument": "EUR\ue000USD"}, [f"instrument: {FORMAT}"]),  # Co
    ({"instrument": "EUR\u0378USD"}, [f"instrument: {FORMAT}"]),  # Cn
    ({"instrument": "EUR\ud800USD"}, [f"instrument: {FORMAT}"]),  # Cs
    # fixed sets
    ({"status": "open"}, ["status: not closed"]),
    ({"side": "HOLD"}, ["side: not BUY or SELL"]),
    ({"side": ""}, ["side: not BUY or SELL"]),
    # amounts: finite, > 0, <= 1e12; profit/loss finite, |x| <= 1e15
    ({"entry_price": -1.0}, [f"entry_price: {AMOUNT}"]),
    ({"exit_price": 0.0}, [f"exit_price: {AMOUNT}"]),
    ({"volume": -0.0}, [f"volume: {AMOUNT}"]),
    ({"volume": 1.0000000000000002e12}, [f"volume: {AMOUNT}"]),
    ({"volume": 1e308}, [f"volume: {AMOUNT}"]),
    ({"volume": float("inf")}, [f"volume: {AMOUNT}"]),
    ({"volume": float("nan")}, [f"volume: {AMOUNT}"]),
    ({"entry_price": float("nan")}, [f"entry_price: {AMOUNT}"]),
    ({"exit_price": float("-inf")}, [f"exit_price: {AMOUNT}"]),
    ({"profit_loss": float("nan")}, ["profit_loss: must be a number between -1e+15 and 1e+15"]),
    ({"profit_loss": float("inf")}, ["profit_loss: must be a number between"]),
    ({"profit_loss": -1.0000000000000002e15}, ["profit_loss: must be a number between"]),
    ({"profit_loss": 2e15}, ["profit_loss: must be a number between"]),
    # times: TRACE_EARLIEST_CLOSE <= t <= now + TRACE_MAX_CLOCK_SKEW; opened <= closed
    (
        {"opened_at": NOW + timedelta(hours=1)},
        ["opened_at: more than", "closed_at: before opened_at"],
    ),
    (
        {"opened_at": NOW - timedelta(minutes=1), "closed_at": NOW - timedelta(minutes=2)},
        ["closed_at: before opened_at"],
    ),
    ({"closed_at": YEAR_9999}, [f"closed_at: {FUTURE}"]),
    ({"closed_at": NOW + timedelta(days=3652)}, [f"closed_at: {FUTURE}"]),
    ({"closed_at": NOW + timedelta(days=1)}, [f"closed_at: {FUTURE}"]),
    ({"closed_at": NOW + SKEW + timedelta(seconds=1)}, [f"closed_at: {FUTURE}"]),
    (
        {"opened_at": YEAR_9999, "closed_at": YEAR_9999},
        [f"opened_at: {FUTURE}", f"closed_at: {FUTURE}"],
    ),
    (
        {
            "opened_at": datetime(1969, 12, 31, tzinfo=UTC),
            "closed_at": datetime(1969, 12, 31, 1, tzinfo=UTC),
        },
        [f"opened_at: {FLOOR}", f"closed_at: {FLOOR}"],
    ),
    (
        {
            "opened_at": datetime(1, 1, 1, tzinfo=UTC),
            "closed_at": datetime(1999, 12, 31, tzinfo=UTC),
        },
        [f"opened_at: {FLOOR}", f"closed_at: {FLOOR}"],
    ),
    (
        {"opened_at": datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
        [f"opened_at: {FLOOR}"],
    ),
    # adapters: at most 32 names
    ({"tracing_adapters": ["webhook"] * 33}, ["tracing_adapters: more than 32 names"]),
    # every broken field is named, not only the first
    (
        {"trade_id": "", "volume": float("nan"), "closed_at": YEAR_9999},
        ["trade_id: missing", f"volume: {AMOUNT}", f"closed_at: {FUTURE}"],
    ),
]


WRONG_TYPES = [  # what no Avro record in our schema holds, from a decoder's bug
    ({"trade_id": None}, ["trade_id: missing"]),
    ({"trade_id": 42}, ["trade_id: not text"]),
    ({"volume": True}, [f"volume: {AMOUNT}"]),
    ({"volume": "1.0"}, [f"volume: {AMOUNT}"]),
    ({"profit_loss": 10**5000}, ["profit_loss: must be a number between"]),
    ({"side": b"BUY"}, ["side: not BUY or SELL"]),
    ({"closed_at": datetime(2026, 1, 1)}, ["closed_at: not a UTC timestamp"]),  # naive
    ({"closed_at": 1_700_000_000_000}, ["closed_at: not a UTC timestamp"]),
    ({"tracing_adapters": "webhook"}, ["tracing_adapters: not a list of names"]),
    ({"tracing_adapters": [None]}, ["tracing_adapters: not a list of names"]),
]


@pytest.mark.parametrize(
    ("overrides", "rules", "via_avro"),
    [(*case, True) for case in REJECTED] + [(*case, False) for case in WRONG_TYPES],
)
def test_invalid_events_are_rejected_naming_the_field_never_the_value(
    overrides, rules, via_avro
) -> None:
    event = {**trade_event("T-bad", closed_at=NOW - timedelta(minutes=1)), **overrides}
    p = run_any(event, now=NOW) if via_avro else run(b"x", decode=lambda _: event, now=NOW)
    assert isinstance(p, Reject)
    letter = p.letter
    assert letter.reason == "invalid_event"
    for rule in rules:
        assert rule in letter.detail
    assert len(letter.detail.split("; ")) == len(rules), letter.detail  # no other rule named
    assert letter.origin == ORIGIN
    for value in overrides.values():
        if isinstance(value, str) and value.strip():
            assert value not in letter.detail
    for value in canaries("T-bad").values():  # the personal fields go nowhere
        assert value not in codec.encode_dead_letter(letter).decode("latin-1")
    assert RLO not in letter.detail
    json.loads(letter.redacted or "", parse_constant=_no_constants)  # strict JSON


def test_the_value_of_a_broken_field_is_never_in_the_detail() -> None:
    canary = {
        "trade_id": f"canary-trade-{RLO}" + "t" * 200,
        "signal_id": "canary-signal\x00",
        "instrument": "canary-instrument" + "i" * 100,
        "side": "canary-side",
        "status": "canary-status",
        "tracing_adapters": ["canary-adapter"] * 40,
    }
    event = {**trade_event("T-c", closed_at=NOW), **canary, "closed_at": YEAR_9999}
    p = run_any({**event, "volume": 1e308}, now=NOW)
    assert isinstance(p, Reject)
    named = [rule.split(":")[0] for rule in p.letter.detail.split("; ")]
    assert " ".join(named) == (
        "trade_id trade_id signal_id instrument status side volume closed_at tracing_adapters"
    )
    assert "canary" not in p.letter.detail
    assert "1e+308" not in p.letter.detail and "9999" not in p.letter.detail


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


ACCEPTED = [
    {"closed_at": NOW + SKEW},  # exactly the allowed skew
    {"closed_at": NOW + SKEW - timedelta(seconds=1)},
    {"closed_at": NOW + SKEW, "opened_at": NOW + SKEW},
    {"opened_at": datetime(2000, 1, 1, tzinfo=UTC)},  # exactly the floor
    {"closed_at": datetime(2000, 1, 1, tzinfo=UTC), "opened_at": datetime(2000, 1, 1, tzinfo=UTC)},
    {"trade_id": "T" * 128, "signal_id": "S" * 128, "instrument": "X" * 64},
    {"trade_id": "T", "signal_id": "S", "instrument": "X"},
    {"instrument": "Öl/€ 日経 ÄÖÜ", "trade_id": "trade 1"},  # letters, symbols, spaces are fine
    {"volume": 1e12, "entry_price": 1e12, "exit_price": 1e12},
    {"volume": 5e-324, "entry_price": 5e-324, "exit_price": 5e-324},
    {"volume": 3, "entry_price": 1, "exit_price": 2},  # ints are numbers too
    {"profit_loss": -1e15},
    {"profit_loss": 1e15},
    {"profit_loss": 0.0},
    {"side": "sell", "status": "CLOSED"},
    {"tracing_adapters": ["webhook"] * 32},
]


@pytest.mark.parametrize("overrides", ACCEPTED)
def test_values_at_the_bounds_are_accepted(overrides) -> None:
    event = {**trade_event("T-edge", closed_at=NOW - timedelta(minutes=1)), **overrides}
    p = run_any(event, now=NOW, delay=timedelta(days=7))
    assert isinstance(p, Schedule)
    assert p.delivery.due_at == event["closed_at"] + timedelta(days=7)
    codec.encode_delivery(p.delivery)


def test_time_bounds_follow_the_limits() -> None:
    late = trade_event("T-skew", closed_at=NOW + timedelta(minutes=9))
    assert isinstance(run(late, now=NOW), Reject)
    wide = Limits(max_clock_skew=timedelta(minutes=10), earliest=datetime(1990, 1, 1, tzinfo=UTC))
    assert isinstance(run(late, now=NOW, limits=wide), Schedule)
    old = trade_event("T-old", closed_at=datetime(1995, 1, 1, tzinfo=UTC))
    assert isinstance(run(old, now=NOW), Reject)
    assert isinstance(run(old, now=NOW, limits=wide), Schedule)
    huge = Limits(max_clock_skew=timedelta.max)  # no overflow computing the bound
    far = trade_event("T-far", closed_at=YEAR_9999, opened_at=NOW)
    assert isinstance(run(far, now=NOW, limits=huge, delay=timedelta(0)), Schedule)


def test_limits_refuse_a_naive_floor_or_a_negative_skew() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Limits(earliest=datetime(2000, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        Limits(max_clock_skew=timedelta(seconds=-1))


def test_events_not_opted_in_are_skipped_whatever_they_hold() -> None:
    event = trade_event("", tracing_opt_in=False, closed_at=YEAR_9999, volume=float("nan"))
    assert run({**event, "tracing_adapters": ["x"] * 100}, now=NOW) == Skip("not_opted_in")


def test_an_unforeseen_failure_is_a_dead_letter_and_a_dependency_failure_is_not() -> None:
    def broken(_: bytes) -> dict[str, Any]:
        return {**trade_event("T-odd"), "closed_at": "not a time"}  # a decoder's bug

    p = run(trade_event("T-odd"), decode=broken)
    assert isinstance(p, Reject)
    assert p.letter.reason == "invalid_event"
    assert "closed_at: not a UTC timestamp" in p.letter.detail

    class Odd(dict[str, Any]):  # a decoder's output that misbehaves
        def get(self, key: str, default: Any = None) -> Any:
            if key == "side":
                raise RuntimeError("boom")
            return super().get(key, default)

    p = run(trade_event("T-odd"), decode=lambda _: Odd(trade_event("T-odd")))
    assert isinstance(p, Reject)
    assert p.letter.reason == "unprocessable"
    assert p.letter.detail == "RuntimeError while validating"
    assert "boom" not in p.letter.detail

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


def test_a_broken_decoder_is_unprocessable_and_plan_still_returns() -> None:
    def raises(_: bytes) -> dict[str, Any]:
        raise ValueError("canary-in-the-message")

    not_a_record: Any = 42
    for decode, step in ((raises, "decoding"), (lambda _: not_a_record, "validating")):
        p = run(b"x", decode=decode)
        assert isinstance(p, Reject)
        assert p.letter.reason == "unprocessable"
        assert p.letter.detail.endswith(f"while {step}")
        assert "canary" not in p.letter.detail
        json.loads(p.letter.redacted or "null", parse_constant=_no_constants)


def test_a_value_no_text_can_hold_is_an_invalid_event_not_a_crash() -> None:
    huge = 10**5000  # str() of it raises: the rules must never format a value
    event = {**trade_event("T-big"), "trade_id": huge, "side": huge, "status": huge, "volume": huge}
    p = run(b"x", decode=lambda _: event)
    assert isinstance(p, Reject)
    assert p.letter.reason == "invalid_event"
    assert json.loads(p.letter.redacted or "")["trade_id"] is None
