"""No event can stop or stall the service: bad input on a real broker, produced the way
an upstream platform would (plain Avro in the schema of schemas/trade_closed.avsc), read
by `trace-stream run` as a real process."""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

from devenv.tracker import Tracker
from tests.support import Process, env_for, make_settings, read_topics, trade_event, wait_for
from trace_stream import codec
from trace_stream.kafka import OutRecord, Producer
from trace_stream.records import DeadLetter
from trace_stream.settings import Settings
from trace_stream.topics import layout

RLO = "\u202e"  # right-to-left override


def _raw_long_schema() -> Any:
    """trade_closed with closed_at as a plain long: to write a timestamp that Avro can
    carry but no datetime can hold, as a buggy upstream could."""
    raw = json.loads((codec.schema_dir() / "trade_closed.avsc").read_text())
    for f in raw["fields"]:
        if f["name"] == "closed_at":
            f["type"] = "long"
    return fastavro.parse_schema(raw)


def _encode(event: dict[str, Any], schema: Any = None) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema or codec.schema("trade_closed"), event)
    return buf.getvalue()


def _bad_events(rng: random.Random, now: datetime) -> list[tuple[str, Callable[[str], bytes]]]:
    """(expected dead-letter reason, trade id -> encoded event), one per kind of bad input."""

    def event(tid: str, **overrides: Any) -> bytes:
        return _encode({**trade_event(tid, closed_at=now), **overrides})

    def far_long(trade_id: str) -> bytes:
        e = trade_event(trade_id, closed_at=now)
        return _encode({**e, "closed_at": 2**62}, _raw_long_schema())

    invalid = "invalid_event"
    return [
        (invalid, lambda t: event(t, closed_at=datetime(9999, 12, 31, 23, 59, 59, 999000, UTC))),
        (invalid, lambda t: event(t, closed_at=now + timedelta(days=3652))),
        (invalid, lambda t: event(t, closed_at=now + timedelta(days=1))),
        (invalid, lambda t: event(t, closed_at=datetime(1960, 1, 1, tzinfo=UTC))),
        (invalid, lambda t: event(t, opened_at=now + timedelta(minutes=1))),
        (invalid, lambda t: event(t, volume=1e308)),
        (invalid, lambda t: event(t, volume=float("nan"))),
        (invalid, lambda t: event(t, entry_price=float("inf"))),
        (invalid, lambda t: event(t, exit_price=-1.0)),
        (invalid, lambda t: event(t, profit_loss=float("-inf"))),
        (invalid, lambda t: event(t, instrument=f"EUR{RLO}USD" * 20_000)),
        (invalid, lambda t: event(t, instrument=f"EUR{RLO}USD")),
        (invalid, lambda t: event(t, signal_id="S" * 500)),
        (invalid, lambda t: event(t, trade_id="")),
        (invalid, lambda t: event(t, side="HOLD")),
        (invalid, lambda t: event(t, status="open")),
        (invalid, lambda t: event(t, tracing_adapters=["webhook"] * 100)),
        ("undecodable", far_long),
        ("undecodable", lambda t: event(t)[: rng.randrange(1, 40)]),  # truncated
        ("undecodable", lambda t: rng.randbytes(rng.randrange(1, 300))),
    ]


def _dead_letters(settings: Settings) -> list[DeadLetter]:
    return [
        codec.decode_dead_letter(m.value() or b"")
        for m in read_topics(settings, layout(settings).dead_letter)
    ]


def _strict_json(text: str | None) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"dead-letter JSON holds {name}")

    json.loads(text or "null", parse_constant=refuse)


def test_thousands_of_extreme_events_never_stop_the_service(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    seed = 8
    rng = random.Random(seed)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    now = datetime.now(UTC)
    kinds = _bad_events(rng, now)
    valid: set[str] = set()
    expected: Counter[str] = Counter()
    records = []
    for i in range(4000):
        trade_id = f"T-{i:04d}"
        if rng.random() < 0.5:
            closed = now - timedelta(seconds=rng.uniform(0, 120))
            records.append(_encode(trade_event(trade_id, closed_at=closed)))
            valid.add(trade_id)
        else:
            reason, make = rng.choice(kinds)
            records.append(make(trade_id))
            expected[reason] += 1
    producer = Producer(settings.kafka_config())
    for value in records:
        producer.produce(OutRecord(settings.trace_input_topic, value))
    producer.flush()
    env = env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    proc = Process(env, tmp_path / "service.log")
    started = time.monotonic()
    try:

        def delivered() -> set[str]:
            return {r.json()["trade_id"] for r in tracker.requests(ok=True)}

        wait_for(lambda: delivered() >= valid, timeout=120, what="every valid trade posted")

        def all_dead_lettered() -> list[DeadLetter]:
            found = _dead_letters(settings)
            return found if len(found) >= expected.total() else []

        letters = wait_for(all_dead_lettered, timeout=60, what="every invalid event dead-lettered")
        assert proc.proc.poll() is None, "the service exited"
        assert proc.terminate(timeout=40) == 0
    finally:
        proc.close()
    reasons = Counter(letter.reason for letter in letters)
    print(
        f"\nseed {seed}: {len(records)} sent: {len(valid)} valid delivered, "
        f"{len(letters)} invalid dead-lettered ({dict(reasons)}), 0 lost, service alive, "
        f"{time.monotonic() - started:.0f} s"
    )
    assert reasons == expected
    assert len({letter.origin.offset for letter in letters if letter.origin.partition == 0}) == (
        sum(1 for letter in letters if letter.origin.partition == 0)
    ), "an event was dead-lettered twice"
    assert delivered() == valid, "an invalid event was posted"
    for letter in letters:
        assert letter.detail and letter.adapter is None
        _strict_json(letter.redacted)


def test_far_future_close_times_are_dead_lettered_and_hold_back_nothing(
    kafka_bootstrap, tracker: Tracker, tmp_path: Path
) -> None:
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=1 / 60)
    now = datetime.now(UTC)
    far = [datetime(9999, 12, 31, 23, 59, 59, 999000, UTC), now + timedelta(days=3652)]
    far.append(now + timedelta(days=1))
    producer = Producer(settings.kafka_config())
    sent = []
    for i, closed in enumerate(far):
        bad = trade_event(f"FAR-{i}", closed_at=closed, opened_at=now - timedelta(hours=1))
        producer.produce(OutRecord(settings.trace_input_topic, _encode(bad), partition=0))
        for j in range(5):  # valid trades behind it in the same partition
            good = trade_event(f"T-{i}-{j}")
            sent.append(good["trade_id"])
            producer.produce(OutRecord(settings.trace_input_topic, _encode(good), partition=0))
    producer.flush()
    proc = Process(env_for(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces"), tmp_path / "s.log")
    try:
        wait_for(lambda: len(tracker.requests(ok=True)) == len(sent), what="the valid trades")
        wait_for(lambda: len(_dead_letters(settings)) == 3, what="the three dead letters")
        assert proc.proc.poll() is None, "the service exited"
        assert proc.terminate(timeout=40) == 0
    finally:
        proc.close()
    letters = _dead_letters(settings)
    assert sorted(json.loads(d.redacted or "{}")["trade_id"] for d in letters) == [
        "FAR-0",
        "FAR-1",
        "FAR-2",
    ]
    for letter in letters:
        assert letter.reason == "invalid_event"
        assert "closed_at: more than 0:05:00 in the future" in letter.detail
    assert sorted(r.json()["trade_id"] for r in tracker.requests(ok=True)) == sorted(sent)
    due = now + timedelta(seconds=1)
    assert max(r.at for r in tracker.requests()) - due.timestamp() < 30, "held back"
