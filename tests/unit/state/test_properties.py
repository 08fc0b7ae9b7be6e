"""Properties of the bookkeeping that decides what may be committed and where a failed
delivery goes, over generated histories rather than hand-picked cases."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import trade_event
from trace_stream import codec
from trace_stream.adapters.base import (
    _KEY_NAMESPACE,
    Delivered,
    Permanent,
    Retriable,
    idempotency_key,
)
from trace_stream.codec.registry import RegistryUnavailable
from trace_stream.core.errors import DependencyError, InvalidEvent
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.pipeline.ingest import Plan, Reject, Schedule, Skip, plan
from trace_stream.pipeline.redact import redact
from trace_stream.pipeline.routing import Abandon, Done, Retry, RetryPolicy, route
from trace_stream.state.offsets import OffsetTracker

TP = ("t", 0)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[int | None]]:
    """Offsets started in order, and an interleaving of finishes and takes (None)."""
    offsets = sorted(draw(st.sets(st.integers(0, 60), min_size=1, max_size=25)))
    finishes = draw(st.permutations(offsets))
    steps: list[int | None] = []
    for offset in finishes:
        steps.append(offset)
        if draw(st.booleans()):
            steps.append(None)
    return offsets, [*steps, None]


@given(histories())
@settings(max_examples=300, deadline=None)
def test_commits_never_pass_unfinished_work_and_emit_each_record_once(history) -> None:
    offsets, steps = history
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.start(TP, offset)
    finished: set[int] = set()
    emitted: list[bytes] = []
    committed = None
    for step in steps:
        if step is not None:
            tracker.finish(TP, step, [OutRecord("out", str(step).encode())])
            finished.add(step)
            continue
        batch = tracker.take()
        emitted += [r.value for r in batch.records]
        if TP in batch.offsets:
            assert committed is None or batch.offsets[TP] > committed
            committed = batch.offsets[TP]
        if committed is not None:  # everything below the commit is finished
            assert all(o in finished for o in offsets if o < committed)
    assert committed == offsets[-1] + 1  # all finished in the end: all committed
    assert emitted == [str(o).encode() for o in offsets]  # once each, in offset order


S = timedelta(seconds=1)
OUTCOMES = st.one_of(
    st.just(Delivered()),
    st.builds(Permanent, st.sampled_from(["auth", "rejected"]), st.just("HTTP 4xx")),
    st.builds(
        Retriable,
        st.sampled_from(["timeout", "server_error", "rate_limited"]),
        st.just("x"),
        st.one_of(st.none(), st.integers(0, 10_000).map(lambda n: n * S)),
    ),
)


@given(
    tiers=st.lists(st.integers(1, 7200), min_size=1, max_size=6).map(
        lambda xs: tuple(sorted(x * S for x in xs))
    ),
    max_retries=st.integers(0, 8),
    attempts=st.integers(0, 10),
    outcome=OUTCOMES,
)
def test_routing_never_posts_early_and_never_retries_forever(
    tiers, max_retries, attempts, outcome
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = RetryPolicy(tiers, tuple(f"r{i}" for i in range(len(tiers))), max_retries)
    delivery = TraceDelivery(
        trace=redact(trade_event("T-1")),
        adapters=("a", "b"),
        attempt=attempts,
        due_at=now,
        origin=Origin(topic="in", partition=0, offset=0),
    )
    r = route(delivery, "a", outcome, policy=policy, now=now)
    if isinstance(outcome, Delivered):
        assert r == Done()
    elif isinstance(r, Retry):
        assert isinstance(outcome, Retriable)
        assert attempts < max_retries  # retries left
        assert r.delivery.attempt == attempts + 1
        assert r.delivery.due_at >= now + tiers[0]
        wanted = outcome.retry_after or timedelta(0)
        assert r.delivery.due_at >= now + min(wanted, tiers[-1])  # Retry-After, capped
        assert r.delivery.adapters == ("a",)
    else:
        assert isinstance(r, Abandon)
        assert isinstance(outcome, Permanent) or attempts >= max_retries
        assert r.letter.delivery is not None and r.letter.delivery.attempt == attempts + 1


_TEXT = st.text(min_size=0, max_size=300)
_TIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_EXTREMES = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        1e308,
        -1e308,
        5e-324,
        -0.0,
        1e12,
        1.0000000000000002e12,
        1e15,
        -1e15,
        2**63,
        -(2**63) - 1,
        10**5000,  # str() of it raises
        "",
        " ",
        "\u202e",
        "\x00",
        "\ud800",
        "EUR\u202eUSD" * 30_000,
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime.max,
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    _TIMES,
    st.datetimes(),  # naive
    st.binary(max_size=20),
    _EXTREMES,
)
_ANY = st.one_of(
    _SCALARS,
    st.lists(_TEXT, max_size=40),
    st.lists(_SCALARS, max_size=5),
    st.dictionaries(_TEXT, _SCALARS, max_size=3),
)
_FIELDS = (
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
    "status",
    "tracing_opt_in",
    "tracing_adapters",
    "user_email",
)
_RULE = (
    r"(trade_id|signal_id|instrument|side|status|volume|entry_price|exit_price|profit_loss"
    r"|opened_at|closed_at|tracing_adapters): (missing|not text|only whitespace"
    r"|longer than (128|64) characters|holds a control or format character|not closed"
    r"|not BUY or SELL|must be a number above 0 and at most 1e\+12"
    r"|must be a number between -1e\+15 and 1e\+15|not a UTC timestamp|before opened_at"
    r"|before 2000-01-01T00:00:00\+00:00 \(TRACE_EARLIEST_CLOSE\)"
    r"|more than 0:05:00 in the future \(TRACE_MAX_CLOCK_SKEW\)"
    r"|not a list of names|more than 32 names)"
)
_DETAIL = re.compile(f"{_RULE}(; {_RULE})*")
"""Every detail of an invalid event: fixed field names and rules, nothing drawn."""


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | dict):
        for item in value.items() if isinstance(value, dict) else value:
            yield from _strings(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from _strings(item)


def _plan(event: object, delay: timedelta = timedelta(minutes=5)) -> Plan:
    return plan(
        b"ignored",
        Origin(topic="in", partition=0, offset=0),
        enabled_adapters=frozenset({"webhook"}),
        delay=delay,
        now=_NOW,
        decode=lambda _: cast(Any, event),
    )


_NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@given(
    overrides=st.dictionaries(st.sampled_from(_FIELDS), _ANY, max_size=6),
    drop=st.sets(st.sampled_from(_FIELDS), max_size=3),
    delay=st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(days=7)]),
)
@settings(max_examples=400, deadline=None)
def test_planning_never_raises_and_never_quotes_a_value(overrides, drop, delay) -> None:
    """Whatever a decoded event holds (any type, any extreme), `plan` returns a plan;
    a rejection names fields and rules, never their values."""
    event = {**trade_event("T-prop", closed_at=_NOW - timedelta(minutes=1)), **overrides}
    for name in drop:
        event.pop(name, None)
    p = _plan(event, delay)
    if isinstance(p, Reject):
        assert p.letter.reason == "invalid_event", p.letter.detail  # no rule missing
        assert _DETAIL.fullmatch(p.letter.detail), p.letter.detail
        for value in _strings(list(overrides.values())):
            if len(value) >= 4 and value not in _RULE:  # drawn words of the rules themselves
                assert value not in p.letter.detail
        json.loads(p.letter.redacted or "null", parse_constant=_strict)
    elif isinstance(p, Schedule):
        d = p.delivery
        assert d.due_at == d.trace.closed_at + delay
        assert datetime(2000, 1, 1, tzinfo=UTC) <= d.trace.closed_at <= _NOW + timedelta(minutes=5)
        codec.encode_delivery(d)  # whatever passed validation can be written


_FAILURES = st.sampled_from(
    [
        ValueError("canary"),
        KeyError("canary"),
        RecursionError("canary"),
        UnicodeDecodeError("utf-8", b"canary", 0, 1, "canary"),
        InvalidEvent("undecodable", "not a valid trade_closed Avro record (ValueError)"),
        DependencyError("canary"),
        RegistryUnavailable("canary"),
    ]
)


@given(outcome=st.one_of(_ANY, _FAILURES))
@settings(max_examples=200, deadline=None)
def test_only_a_dependency_failure_of_the_decoder_propagates(outcome) -> None:
    """A decoder that returns anything at all, or raises: `plan` returns a plan, unless
    the decoder's failure is a DependencyError (the schema registry is down)."""
    if isinstance(outcome, BaseException):

        def decode(_: bytes) -> dict[str, Any]:
            raise outcome

    else:

        def decode(_: bytes) -> dict[str, Any]:
            return cast(dict[str, Any], outcome)

    origin = Origin(topic="in", partition=0, offset=0)
    enabled = frozenset({"webhook"})
    if isinstance(outcome, DependencyError):
        with pytest.raises(DependencyError):
            plan(
                b"x", origin, enabled_adapters=enabled, delay=timedelta(0), now=_NOW, decode=decode
            )
        return
    p = plan(b"x", origin, enabled_adapters=enabled, delay=timedelta(0), now=_NOW, decode=decode)
    assert isinstance(p, Reject | Skip)
    if isinstance(p, Reject):
        assert "canary" not in p.letter.detail
        json.loads(p.letter.redacted or "null", parse_constant=_strict)


def _strict(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


@given(trade_id=st.text(st.characters(exclude_categories=["Cs"]), max_size=128), adapter=st.text())
def test_idempotency_key_is_uuid5_byte_for_byte(trade_id: str, adapter: str) -> None:
    """Keys already sent must never change: the hand-built key is uuid5's string."""
    expected = str(uuid.uuid5(_KEY_NAMESPACE, f"{adapter}\x00{trade_id}"))
    assert idempotency_key(trade_id, adapter) == expected
