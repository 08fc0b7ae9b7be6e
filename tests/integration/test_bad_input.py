"""No event can stop or stall the service: bad input on a real broker, produced the way
an upstream platform would (plain Avro in the schema of schemas/trade_closed.avsc), read
by `trace-stream run` as a real process, posting to a real HTTP tracker."""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

from devenv.tracker import Tracker
from tests.support import Process, env_for, make_settings, read_topics, trade_event, wait_for
from trace_stream import codec
from trace_stream.core.messages import OutRecord
from trace_stream.core.records import DeadLetter
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.settings import Settings

RLO = "\u202e"  # right-to-left override
SEED = 8
EVENTS = 4000
Coords = tuple[int, int]  # (partition, offset) in the input topic


def _encode(event: dict[str, Any], schema: Any = None) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema or codec.schema("trade_closed"), event)
    return buf.getvalue()


def _as_long(field: str) -> Any:
    """trade_closed with `field` as a plain long: to write a timestamp that Avro can
    carry but no datetime can hold, as a buggy upstream could."""
    raw = json.loads((codec.schema_dir() / "trade_closed.avsc").read_text())
    for f in raw["fields"]:
        if f["name"] == field:
            f["type"] = "long"
    return fastavro.parse_schema(raw)


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: its dead-letter reason and the field its detail names."""

    label: str
    reason: str
    field: str | None
    make: Callable[[str], bytes]


def _bad_kinds(rng: random.Random, now: datetime) -> list[Kind]:
    def event(tid: str, **overrides: Any) -> bytes:
        return _encode({**trade_event(tid, closed_at=now), **overrides})

    def raw_time(field: str, millis: int) -> Callable[[str], bytes]:
        return lambda t: _encode({**trade_event(t, closed_at=now), field: millis}, _as_long(field))

    def invalid(label: str, field: str, **overrides: Any) -> Kind:
        return Kind(label, "invalid_event", field, lambda t: event(t, **overrides))

    year_9999 = datetime(9999, 12, 31, 23, 59, 59, 999000, UTC)
    old = datetime(1960, 1, 1, tzinfo=UTC)
    return [
        invalid("closed 9999-12-31", "closed_at", closed_at=year_9999),
        invalid("closed 10 years ahead", "closed_at", closed_at=now + timedelta(days=3652)),
        invalid("closed 1 day ahead", "closed_at", closed_at=now + timedelta(days=1)),
        invalid("closed skew + 1 min ahead", "closed_at", closed_at=now + timedelta(minutes=6)),
        invalid("closed before 1970", "closed_at", closed_at=old, opened_at=old),
        invalid(
            "closed before the floor", "closed_at", closed_at=datetime(1999, 12, 31, 23, tzinfo=UTC)
        ),
        invalid("opened ahead", "opened_at", opened_at=now + timedelta(days=1)),
        invalid("opened in year 1", "opened_at", opened_at=datetime(1, 1, 1, tzinfo=UTC)),
        invalid("closed before opened", "closed_at", opened_at=now + timedelta(seconds=1)),
        invalid("volume 1e308", "volume", volume=1e308),
        invalid("volume NaN", "volume", volume=float("nan")),
        invalid("volume 0", "volume", volume=0.0),
        invalid("entry price inf", "entry_price", entry_price=float("inf")),
        invalid("entry price over 1e12", "entry_price", entry_price=1.000001e12),
        invalid("exit price -inf", "exit_price", exit_price=float("-inf")),
        invalid("exit price < 0", "exit_price", exit_price=-1.0),
        invalid("profit/loss NaN", "profit_loss", profit_loss=float("nan")),
        invalid("profit/loss -inf", "profit_loss", profit_loss=float("-inf")),
        invalid("profit/loss 1e16", "profit_loss", profit_loss=1e16),
        invalid("instrument 200 kB + RLO", "instrument", instrument=f"EUR{RLO}USD" * 28_000),
        invalid("instrument RLO", "instrument", instrument=f"EUR{RLO}USD"),
        invalid("instrument 65 chars", "instrument", instrument="X" * 65),
        invalid("instrument empty", "instrument", instrument=""),
        invalid("instrument blank", "instrument", instrument="   "),
        invalid("instrument line separator", "instrument", instrument="EUR\u2028USD"),
        invalid("trade id NUL", "trade_id", trade_id="T\x00canary"),
        invalid("trade id 129 chars", "trade_id", trade_id="T" * 129),
        invalid("trade id empty", "trade_id", trade_id=""),
        invalid("signal id 500 chars", "signal_id", signal_id="S" * 500),
        invalid("signal id zero-width space", "signal_id", signal_id="SIG\u200b1"),
        invalid("side HOLD", "side", side="HOLD"),
        invalid("side empty", "side", side=""),
        invalid("status open", "status", status="open"),
        invalid("33 adapters", "tracing_adapters", tracing_adapters=["webhook"] * 33),
        invalid("1000 adapters", "tracing_adapters", tracing_adapters=["x"] * 1000),
        Kind("closed_at 2**62 ms", "undecodable", None, raw_time("closed_at", 2**62)),
        Kind("closed_at -2**62 ms", "undecodable", None, raw_time("closed_at", -(2**62))),
        Kind("opened_at 2**62 ms", "undecodable", None, raw_time("opened_at", 2**62)),
        Kind("truncated", "undecodable", None, lambda t: (b := event(t))[: rng.randrange(len(b))]),
        Kind("trailing bytes", "undecodable", None, lambda t: event(t) + rng.randbytes(3)),
        Kind("garbage", "undecodable", None, lambda t: rng.randbytes(rng.randrange(1, 300))),
        Kind("empty value", "undecodable", None, lambda t: b""),
    ]


def _valid(rng: random.Random, trade_id: str, now: datetime) -> bytes:
    """A valid trade with values spread over, and up to, every bound."""
    closed = now - timedelta(seconds=rng.uniform(0, 120))
    floor = datetime(2000, 1, 1, tzinfo=UTC)
    return _encode(
        trade_event(
            trade_id + "-" * rng.choice([0, 128 - len(trade_id)]),
            closed_at=closed,
            opened_at=rng.choice([floor, closed, closed - timedelta(days=rng.uniform(0, 900))]),
            signal_id=rng.choice(["S", "SIG-1", "s" * 128]),
            instrument=rng.choice(["EURUSD", "X", "I" * 64, "Öl/€ 日経 225"]),
            side=rng.choice(["BUY", "SELL", "buy", "Sell"]),
            status=rng.choice(["closed", "CLOSED"]),
            volume=rng.choice([1e12, 5e-324, rng.uniform(0.01, 100)]),
            entry_price=rng.choice([1e12, rng.uniform(0.5, 2)]),
            exit_price=rng.choice([5e-324, rng.uniform(0.5, 2)]),
            profit_loss=rng.choice([1e15, -1e15, 0.0, rng.uniform(-1e6, 1e6)]),
            tracing_adapters=["webhook"] + ["other"] * rng.choice([0, 31]),
        )
    )


def _send(settings: Settings, values: list[bytes], rng: random.Random) -> list[Coords]:
    """Produce each value to a random partition; return where each one landed (the
    producer is idempotent and the topic new, so offsets count up from 0 in order)."""
    producer = Producer(settings.kafka_config())
    next_offset = [0, 0]
    coords = []
    for value in values:
        partition = rng.randrange(2)
        coords.append((partition, next_offset[partition]))
        next_offset[partition] += 1
        producer.produce(OutRecord(settings.trace_input_topic, value, partition=partition))
    producer.flush()
    read = {
        (m.partition(), m.offset()): m.value() or b""
        for m in read_topics(settings, settings.trace_input_topic)
    }
    assert read == dict(zip(coords, values, strict=True)), "the input is not where we put it"
    return coords


def _dead_letters(settings: Settings) -> dict[Coords, list[DeadLetter]]:
    by_origin: dict[Coords, list[DeadLetter]] = {}
    for m in read_topics(settings, layout(settings).dead_letter):
        letter = codec.decode_dead_letter(m.value() or b"")
        headers = dict(m.headers() or [])
        origin = (letter.origin.partition, letter.origin.offset)
        coords = headers["trace.origin.partition"], headers["trace.origin.offset"]
        assert coords == (str(origin[0]).encode(), str(origin[1]).encode())
        by_origin.setdefault(origin, []).append(letter)
    return by_origin


def _letters_when(
    settings: Settings, enough: Callable[[dict[Coords, list[DeadLetter]]], bool]
) -> Callable[[], dict[Coords, list[DeadLetter]]]:
    """For wait_for: the dead letters by origin once there are enough, else nothing."""

    def check() -> dict[Coords, list[DeadLetter]]:
        found = _dead_letters(settings)
        return found if enough(found) else {}

    return check


def _strict_json(text: str | None) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"dead-letter JSON holds {name}")

    return json.loads(text or "null", parse_constant=refuse)


def _service(settings: Settings, tracker: Tracker, log: Path) -> Process:
    return Process(env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces"), log)


def _posted(tracker: Tracker) -> set[str]:
    return {r.json()["trade_id"] for r in tracker.requests(ok=True)}


def _log_is_clean(log: Path) -> None:
    """No unforeseen failure (logged as an error) and no value of a bad event."""
    text = log.read_text(errors="replace")
    errors = [line for line in text.splitlines() if '"level": "error"' in line]
    assert not errors, errors[:3]
    assert "canary" not in text and RLO not in text and "\\u202e" not in text


def _generate(rng: random.Random, now: datetime) -> tuple[list[bytes], list[Kind | None]]:
    """EVENTS encoded events, about half valid (kind None), the rest of a random bad kind."""
    kinds = _bad_kinds(rng, now)
    values, bad = [], []
    for i in range(EVENTS):
        kind = rng.choice(kinds) if rng.random() < 0.5 else None
        values.append(kind.make(f"T-{i:04d}") if kind else _valid(rng, f"T-{i:04d}", now))
        bad.append(kind)
    return values, bad


def _check_letter(kind: Kind, found: list[DeadLetter]) -> None:
    assert len(found) == 1, f"{kind.label}: dead-lettered {len(found)} times"
    letter = found[0]
    assert letter.reason == kind.reason, (kind.label, letter.reason, letter.detail)
    assert kind.field is None or f"{kind.field}: " in letter.detail, (kind.label, letter.detail)
    assert letter.adapter is None and letter.delivery is None
    redacted = _strict_json(letter.redacted)
    assert redacted is None or not {"user_email", "user_id", "fees"} & redacted.keys()


def test_thousands_of_extreme_events_never_stop_the_service(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    print(f"\nseed {SEED}")
    rng = random.Random(SEED)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    values, bad = _generate(rng, datetime.now(UTC))
    coords = _send(settings, values, rng)
    pairs = list(zip(values, bad, strict=True))
    valid = {codec.decode_trade_closed(v)["trade_id"] for v, k in pairs if k is None}
    invalid = {c: k for c, k in zip(coords, bad, strict=True) if k is not None}
    started = time.monotonic()
    proc = _service(settings, tracker, tmp_path / "service.log")
    timed_out = ""
    try:
        wait_for(lambda: _posted(tracker) >= valid, timeout=60, what="every valid trade posted")
        everything = _letters_when(settings, lambda found: found.keys() >= invalid.keys())
        wait_for(everything, timeout=30, what="every invalid event dead-lettered")
    except AssertionError as exc:  # print the figures all the same
        timed_out = str(exc)
    settled = time.monotonic() - started
    try:
        alive = proc.proc.poll() is None
        code = proc.terminate(timeout=40) if alive else proc.proc.returncode
    finally:
        proc.close()
    posted, letters = _posted(tracker), _dead_letters(settings)
    lost = len(valid - posted) + len(invalid.keys() - letters.keys())
    reasons = Counter(letter.reason for found in letters.values() for letter in found)
    print(
        f"{EVENTS} sent: {len(valid & posted)} valid delivered, {len(letters)} invalid "
        f"dead-lettered (reasons: {dict(reasons)}), {lost} lost, "
        f"service {'alive' if alive else 'DEAD'}, SIGTERM exit {code}; "
        f"{settled:.1f} s from the service's start until all settled"
    )
    assert not timed_out, timed_out
    assert alive and code == 0 and lost == 0
    assert posted == valid, "an invalid event was posted"
    assert letters.keys() == invalid.keys(), "a valid event was dead-lettered"
    for origin, found in letters.items():
        _check_letter(invalid[origin], found)
    _log_is_clean(tmp_path / "service.log")


def _in_one_partition(settings: Settings, events: list[dict[str, Any]]) -> None:
    producer = Producer(settings.kafka_config())
    for e in events:
        producer.produce(OutRecord(settings.trace_input_topic, _encode(e), partition=0))
    producer.flush()


def test_far_future_close_times_are_dead_lettered_and_hold_back_nothing(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    now = datetime.now(UTC)
    far = [
        datetime(9999, 12, 31, 23, 59, 59, 999000, UTC),
        now + timedelta(days=3652),
        now + timedelta(days=1),
    ]
    events, sent = [], []
    for i, closed in enumerate(far):
        events.append(trade_event(f"FAR-{i}", closed_at=closed, opened_at=now))
        for j in range(5):  # valid trades behind it in the same input partition
            events.append(trade_event(f"T-{i}-{j}"))
            sent.append(f"T-{i}-{j}")
    _in_one_partition(settings, events)
    proc = _service(settings, tracker, tmp_path / "service.log")
    try:
        wait_for(lambda: _posted(tracker) >= set(sent), what="the valid trades")
        letters = wait_for(_letters_when(settings, lambda d: len(d) == 3), what="3 dead letters")
        assert proc.proc.poll() is None, "the service exited"
        assert proc.terminate(timeout=40) == 0
    finally:
        proc.close()
    assert sorted(letters) == [(0, 0), (0, 6), (0, 12)]  # the three far-future events
    for (found,) in letters.values():
        assert found.reason == "invalid_event"
        assert found.detail == "closed_at: more than 0:05:00 in the future (TRACE_MAX_CLOCK_SKEW)"
    assert sorted(r.json()["trade_id"] for r in tracker.requests(ok=True)) == sorted(sent)
    due = now + timedelta(seconds=1)
    lateness = max(r.at for r in tracker.requests()) - due.timestamp()
    assert lateness < 30, (
        f"held back: the last valid trade came {lateness:.1f} s after its due time"
    )
    _log_is_clean(tmp_path / "service.log")


def test_non_finite_amounts_give_strict_json_dead_letters(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    nan, inf = float("nan"), float("inf")
    broken: list[dict[str, float]] = [
        {"volume": nan},
        {"entry_price": inf},
        {"exit_price": -inf},
        {"profit_loss": nan},
        {"profit_loss": -inf},
        {"volume": inf, "entry_price": nan, "exit_price": nan, "profit_loss": inf},
    ]
    events = []
    for i, fields in enumerate(broken):
        events += [trade_event(f"BAD-{i}", **fields), trade_event(f"T-{i}")]
    _in_one_partition(settings, events)
    proc = _service(settings, tracker, tmp_path / "service.log")
    try:
        wait_for(lambda: _posted(tracker) >= {f"T-{i}" for i in range(len(broken))}, what="posts")
        enough = _letters_when(settings, lambda d: len(d) == len(broken))
        letters = wait_for(enough, what="the dead letters")
        assert proc.proc.poll() is None, "the service exited"
        assert proc.terminate(timeout=40) == 0
    finally:
        proc.close()
    for i, fields in enumerate(broken):
        (letter,) = letters[(0, 2 * i)]
        assert letter.reason == "invalid_event"
        redacted = _strict_json(letter.redacted)  # raises on NaN, Infinity, -Infinity
        assert redacted["trade_id"] == f"BAD-{i}"
        for name in fields:
            assert redacted[name] is None
            assert f"{name}: must be a number" in letter.detail
        assert "nan" not in letter.detail and "inf" not in letter.detail
    assert _posted(tracker) == {f"T-{i}" for i in range(len(broken))}
    _log_is_clean(tmp_path / "service.log")
