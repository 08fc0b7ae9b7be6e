"""Pure: one raw trade.closed message -> what to do with it.

    bytes -> decode -> opted in? -> validate -> redact -> Schedule on the delay topic
                 \\-> Reject (dead letter)   \\-> Skip (counted, not posted)

The due time is computed from the trade's `closed_at`, never from the time the
event was read, so a replayed or late event is not posted early or held twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from . import codec
from .errors import InvalidEvent
from .records import DeadLetter, Origin, TraceDelivery
from .redact import redact, redacted_json

SIDES = frozenset({"BUY", "SELL"})


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
    return closed_at + delay


def validate(event: Mapping[str, Any]) -> None:
    """Raise InvalidEvent naming the first broken rule (field names only, no values)."""
    problems = list(_problems(event))
    if problems:
        raise InvalidEvent("invalid_event", "; ".join(problems))


def _problems(event: Mapping[str, Any]) -> Iterable[str]:
    if not str(event.get("trade_id", "")).strip():
        yield "trade_id: missing"
    if not str(event.get("signal_id", "")).strip():
        yield "signal_id: missing"
    if str(event.get("status", "")).lower() != "closed":
        yield "status: not closed"
    if str(event.get("side", "")).upper() not in SIDES:
        yield "side: not BUY or SELL"
    for name in ("volume", "entry_price", "exit_price"):
        value = event.get(name)
        if not isinstance(value, float | int) or not math.isfinite(value) or value <= 0:
            yield f"{name}: must be a positive number"
    if not math.isfinite(event.get("profit_loss", math.nan)):
        yield "profit_loss: must be a finite number"
    opened, closed = event.get("opened_at"), event.get("closed_at")
    if isinstance(opened, datetime) and isinstance(closed, datetime) and closed < opened:
        yield "closed_at: before opened_at"


def plan(
    value: bytes | None,
    origin: Origin,
    *,
    enabled_adapters: frozenset[str],
    delay: timedelta,
    now: datetime,
    decode: Callable[[bytes], dict[str, Any]] = codec.decode_trade_closed,
) -> Plan:
    """Decide the fate of one trade.closed message. Never raises for bad input
    (`decode` may raise for a broken dependency, such as a schema registry that is down)."""
    event: dict[str, Any] | None = None
    try:
        if value is None:
            raise InvalidEvent("undecodable", "empty message (tombstone)")
        event = decode(value)
        if not event["tracing_opt_in"]:
            return Skip("not_opted_in")
        validate(event)
        trace = redact(event)
    except InvalidEvent as exc:
        return Reject(
            DeadLetter(
                reason=exc.reason,
                detail=exc.detail,
                dead_at=now,
                origin=origin,
                redacted=redacted_json(event) if event is not None else None,
            )
        )
    adapters = tuple(sorted(set(event["tracing_adapters"]) & enabled_adapters))
    if not adapters:
        return Skip("no_enabled_adapter")
    return Schedule(
        TraceDelivery(
            trace=trace, adapters=adapters, due_at=due_at(trace.closed_at, delay), origin=origin
        )
    )
