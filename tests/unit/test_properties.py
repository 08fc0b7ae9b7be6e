"""Properties of the bookkeeping that decides what may be committed and where a failed
delivery goes, over generated histories rather than hand-picked cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import trade_event
from trace_stream import codec
from trace_stream.adapters.base import Delivered, Permanent, Retriable
from trace_stream.ingest import Reject, Schedule, plan
from trace_stream.kafka import OutRecord
from trace_stream.offsets import OffsetTracker
from trace_stream.records import Origin, TraceDelivery
from trace_stream.redact import redact
from trace_stream.routing import Abandon, Done, Retry, RetryPolicy, route

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
_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
    _TIMES,
    st.datetimes(),  # naive
    st.lists(_TEXT, max_size=40),
    st.binary(max_size=20),
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


@given(
    overrides=st.dictionaries(st.sampled_from(_FIELDS), _ANY, max_size=6),
    drop=st.sets(st.sampled_from(_FIELDS), max_size=3),
    delay=st.sampled_from([timedelta(0), timedelta(minutes=5), timedelta(days=7)]),
)
@settings(max_examples=400, deadline=None)
def test_planning_never_raises_and_never_quotes_a_value(overrides, drop, delay) -> None:
    """Whatever a decoded event holds (any type, any extreme), `plan` returns a plan;
    a rejection names fields, never their values."""
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    event = {**trade_event("T-prop", closed_at=now - timedelta(minutes=1)), **overrides}
    for name in drop:
        event.pop(name, None)
    p = plan(
        b"ignored",
        Origin(topic="in", partition=0, offset=0),
        enabled_adapters=frozenset({"webhook"}),
        delay=delay,
        now=now,
        decode=lambda _: event,
    )
    if isinstance(p, Reject):
        assert p.letter.reason == "invalid_event", p.letter.detail  # no rule missing
        for value in overrides.values():
            if isinstance(value, str) and len(value) >= 4:
                assert value not in p.letter.detail
        json.loads(p.letter.redacted or "null", parse_constant=_strict)
    elif isinstance(p, Schedule):
        d = p.delivery
        assert d.due_at == d.trace.closed_at + delay
        assert d.trace.closed_at <= now + timedelta(minutes=5)
        codec.encode_delivery(d)  # whatever passed validation can be written


def _strict(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")
