"""Pure: one raw trade.closed message -> what to do with it.

    bytes -> decode -> opted in? -> validate -> redact -> Schedule on the delay topic
                 \\-> Reject (dead letter)   \\-> Skip (counted, not posted)

The due time is computed from the trade's `closed_at`, never from the time the
event was read, so a replayed or late event is not posted early or held twice.

Every field has a bound (`Limits`): a value beyond it is an input error, dead-lettered
with a detail that names the field and the rule, never the value. `plan` is total:
whatever a record holds, it returns a plan; only a failing dependency of `decode`
(DependencyError, such as a schema registry that is down) propagates.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard

from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.errors import DependencyError, InvalidEvent
from trace_stream.core.reasons import Reason
from trace_stream.core.records import DeadLetter, Origin, TraceDelivery
from trace_stream.pipeline.redact import redact, redacted_json

SIDES = frozenset({"BUY", "SELL"})

MAX_LENGTH = {"trade_id": 128, "signal_id": 128, "instrument": 64}
"""Characters at most in each text field that is passed on."""
MAX_AMOUNT = 1e12
"""Ceiling of volume, entry price and exit price (which must also be finite and > 0)."""
MAX_PROFIT_LOSS = 1e15
"""Ceiling of |profit_loss| (which must also be finite)."""
MAX_ADAPTERS = 32
"""Names at most in tracing_adapters."""
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories never allowed in text passed on: control and format characters
(among them the right-to-left override), surrogates, private use, unassigned."""


@dataclass(frozen=True)
class Limits:
    """The bounds of time a valid event keeps; the other bounds are fixed above."""

    max_clock_skew: timedelta = timedelta(minutes=5)
    """How far after the time of reading a close or open time may be."""
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    """Close and open times before this are input errors."""

    def __post_init__(self) -> None:
        # A naive floor or a negative skew would reject every event: refuse at start-up.
        if self.earliest.utcoffset() is None:
            raise ValueError("Limits.earliest must be timezone-aware")
        if self.max_clock_skew < timedelta(0):
            raise ValueError("Limits.max_clock_skew must not be negative")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Schedule:
    delivery: TraceDelivery


@dataclass(frozen=True)
class Skip:
    reason: Literal["not_opted_in", "no_enabled_adapter"]


@dataclass(frozen=True)
class Reject:
    letter: DeadLetter


Plan = Schedule | Skip | Reject


def due_at(closed_at: datetime, delay: timedelta) -> datetime:
    """`closed_at + delay`. For a validated event, closed_at is at most the time of
    reading + the clock skew, so this cannot overflow (TRACE_DELAY_MINUTES is at most a
    week)."""
    return closed_at + delay


def validate(event: Mapping[str, Any], now: datetime, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise InvalidEvent naming every broken rule (field names only, no values). Only
    called for opted-in events: the others are skipped whatever they hold."""
    problems = list(_problems(event, now, limits))
    if problems:
        raise InvalidEvent("invalid_event", "; ".join(problems))


def _problems(event: Mapping[str, Any], now: datetime, limits: Limits) -> Iterable[str]:
    for name, longest in MAX_LENGTH.items():
        yield from _text(name, event.get(name), longest)
    if not _one_of(event.get("status"), {"closed"}, str.lower):
        yield "status: not closed"
    if not _one_of(event.get("side"), SIDES, str.upper):
        yield "side: not BUY or SELL"
    for name in ("volume", "entry_price", "exit_price"):
        if not _number(event.get(name), 0, MAX_AMOUNT) or event[name] <= 0:
            yield f"{name}: must be a number above 0 and at most {MAX_AMOUNT:g}"
    if not _number(event.get("profit_loss"), -MAX_PROFIT_LOSS, MAX_PROFIT_LOSS):
        yield f"profit_loss: must be a number between -{MAX_PROFIT_LOSS:g} and {MAX_PROFIT_LOSS:g}"
    for name in ("opened_at", "closed_at"):
        yield from _time(name, event.get(name), now, limits)
    opened, closed = event.get("opened_at"), event.get("closed_at")
    if _aware(opened) and _aware(closed) and closed < opened:
        yield "closed_at: before opened_at"
    yield from _adapters(event.get("tracing_adapters"))


def _one_of(value: object, allowed: Collection[str], fold: Callable[[str], str]) -> bool:
    return isinstance(value, str) and fold(value) in allowed


def _text(name: str, value: object, longest: int) -> Iterable[str]:
    if not isinstance(value, str):
        yield f"{name}: missing" if value is None else f"{name}: not text"
    elif not value.strip():
        yield f"{name}: only whitespace" if value else f"{name}: missing"
    else:
        if len(value) > longest:
            yield f"{name}: longer than {longest} characters"
        # Printable ASCII holds none of them (the only ones in ASCII are controls, which
        # are not printable): the per-character look-up is for the rest.
        printable_ascii = value.isascii() and value.isprintable()
        if not printable_ascii and any(unicodedata.category(c) in _FORBIDDEN for c in value):
            yield f"{name}: holds a control or format character"


def _number(value: object, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, float | int):
        return False
    return (isinstance(value, int) or math.isfinite(value)) and low <= value <= high


def _aware(value: object) -> TypeGuard[datetime]:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _time(name: str, value: object, now: datetime, limits: Limits) -> Iterable[str]:
    if not _aware(value):
        yield f"{name}: not a UTC timestamp"
    elif value < limits.earliest:
        yield f"{name}: before {limits.earliest.isoformat()} (TRACE_EARLIEST_CLOSE)"
    elif value - now > limits.max_clock_skew:  # not `now + skew`: that can overflow
        yield f"{name}: more than {limits.max_clock_skew} in the future (TRACE_MAX_CLOCK_SKEW)"


def _adapters(names: object) -> Iterable[str]:
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        yield "tracing_adapters: not a list of names"
    elif len(names) > MAX_ADAPTERS:
        yield f"tracing_adapters: more than {MAX_ADAPTERS} names"


def plan(
    value: bytes | None,
    origin: Origin,
    *,
    enabled_adapters: frozenset[str],
    delay: timedelta,
    now: datetime,
    decode: Callable[[bytes], dict[str, Any]],
    limits: Limits = DEFAULT_LIMITS,
) -> Plan:
    """Decide the fate of one trade.closed message. Never raises for bad input; `decode`
    may raise DependencyError (a schema registry that is down), which propagates."""
    event: dict[str, Any] | None = None
    step = "decoding"
    try:
        if value is None:
            raise InvalidEvent("undecodable", "empty message (tombstone)")
        event = decode(value)
        step = "validating"
        if event.get("tracing_opt_in") is not True:
            return Skip("not_opted_in")
        validate(event, now, limits)
        step = "redacting"
        trace = redact(event)
        step = "computing the due time"
        delivery = TraceDelivery(
            trace=trace,
            adapters=tuple(sorted(set(event["tracing_adapters"]) & enabled_adapters)),
            due_at=due_at(trace.closed_at, delay),
            origin=origin,
        )
    except InvalidEvent as exc:
        return _reject(exc.reason, exc.detail, event, origin, now)
    except DependencyError:
        raise
    except Exception as exc:  # a gap in the rules above: the record's fault all the same
        return _reject("unprocessable", f"{type(exc).__name__} while {step}", event, origin, now)
    if not delivery.adapters:
        return Skip("no_enabled_adapter")
    return Schedule(delivery)


def _reject(reason: Reason, detail: str, event: object, origin: Origin, now: datetime) -> Reject:
    redacted = redacted_json(event) if event is not None else None
    return Reject(dead_letter(reason, detail, origin=origin, at=now, redacted=redacted))
