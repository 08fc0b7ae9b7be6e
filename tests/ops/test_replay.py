"""`trace-stream replay` on a real broker: trades scheduled again, dry runs, bounds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from devenv.tracker import Tracker
from tests.support import (
    canaries,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    unencodable,
    wait_for,
)
from trace_stream import codec
from trace_stream.core.topics import layout

from .conftest import Cli


def _no_canary(text: str, *trade_ids: str) -> None:
    for trade_id in trade_ids:
        for value in canaries(trade_id).values():
            assert value not in text, f"personal value {value} leaked"


def test_replay_schedules_delivered_trades_again(
    kafka_bootstrap: str, tracker: Tracker, cli: Cli
) -> None:
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    ids = [f"T-{i}" for i in range(4)]
    publish(
        settings,
        *(trade_event(i) for i in ids),
        trade_event("T-open", status="open"),
        trade_event("T-private", tracing_opt_in=False),
    )
    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 4, what="the first 4 posts")
    topics = layout(settings)
    assert len(read_topics(settings, topics.delay)) == 4

    dry = cli("replay", "--from", since, "--dry-run")
    assert dry.code == 0, dry.err
    assert {line.split()[0] for line in dry.out.splitlines() if line.startswith("T-")} == set(ids)
    assert "invalid_event: status: not closed" in dry.out
    assert "replay: read 6, scheduled 4, skipped 1, invalid 1 (dry run" in dry.out
    assert len(read_topics(settings, topics.delay)) == 4, "a dry run writes nothing"

    done = cli("replay", "--from", since)
    assert done.code == 0, done.err
    assert "replay: read 6, scheduled 4, skipped 1, invalid 1" in done.out
    records = read_topics(settings, topics.delay)
    assert len(records) == 8
    assert len(read_topics(settings, topics.dead_letter)) == 1, (
        "invalid events not dead-lettered again"
    )
    everything = dry.text + done.text + "".join(repr(m.value()) for m in records)
    _no_canary(everything, *ids, "T-open", "T-private")

    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 8, what="the replayed posts")
    keys = Counter(r.headers["Idempotency-Key"] for r in tracker.requests())
    assert sorted(keys.values()) == [2, 2, 2, 2], "a replayed post reuses its idempotency key"


def test_replay_bounded_by_time_offsets_and_adapter(kafka_bootstrap: str, cli: Cli) -> None:
    settings = make_settings(kafka_bootstrap, trace_enabled_adapters="webhook,myfxbook")
    cli.use(settings)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    publish(
        settings,
        trade_event("T-web"),
        trade_event("T-fx", tracing_adapters=["myfxbook"]),
        trade_event("T-both", tracing_adapters=["webhook", "myfxbook"]),
    )
    cut = datetime.now(UTC) + timedelta(milliseconds=5)
    wait_for(lambda: datetime.now(UTC) > cut + timedelta(milliseconds=5), what="the clock")
    publish(settings, trade_event("T-late", tracing_adapters=["webhook", "myfxbook"]))

    ran = cli("replay", "--from", since, "--to", cut.isoformat(), "--adapter", "myfxbook")
    assert ran.code == 0, ran.err
    assert "replay: read 3, scheduled 2, skipped 1, invalid 0" in ran.out
    delay = layout(settings).delay
    scheduled = [codec.decode_delivery(m.value() or b"") for m in read_topics(settings, delay)]
    assert sorted((d.trace.trade_id, d.adapters) for d in scheduled) == [
        ("T-both", ("myfxbook",)),
        ("T-fx", ("myfxbook",)),
    ]

    every = cli("replay", "--from", "0", "--dry-run")
    assert "replay: read 4, scheduled 4" in every.out
    assert "T-late  adapters=myfxbook,webhook" in every.out

    inputs = read_topics(settings, settings.trace_input_topic)
    on_zero = {(m.key() or b"").decode() for m in inputs if m.partition() == 0}
    listed = cli("replay", "--from", "0:0", "--dry-run")
    assert {line.split()[0] for line in listed.out.splitlines() if line.startswith("T-")} == on_zero


def test_replay_refuses_unknown_or_disabled_adapters(kafka_bootstrap: str, cli: Cli) -> None:
    cli.use(make_settings(kafka_bootstrap))
    unknown = cli("replay", "--from", "0", "--adapter", "nope")
    assert unknown.code == 2
    assert len(unknown.err.splitlines()) == 1
    assert unknown.err.startswith("trace-stream: --adapter: unknown adapter 'nope' (available:")
    disabled = cli("replay", "--from", "0", "--adapter", "myfxbook")
    assert disabled.code == 2
    assert "TRACE_ENABLED_ADAPTERS" in disabled.err and len(disabled.err.splitlines()) == 1


def test_replay_reports_an_event_it_cannot_encode_and_goes_on(
    kafka_bootstrap: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the scheduler would dead-letter as `unprocessable` is counted as invalid by a
    replay, which goes on with the next events instead of stopping with an error."""
    settings = make_settings(kafka_bootstrap)
    cli.use(settings)
    publish(settings, trade_event("T-1"), trade_event("T-odd"), trade_event("T-2"))
    unencodable(monkeypatch, "T-odd")
    for argv in (["--dry-run"], []):
        ran = cli("replay", "--from", "0", *argv)
        assert ran.code == 0, ran.err
        assert "unprocessable: OverflowError while encoding the delivery" in ran.out
        assert "replay: read 3, scheduled 2, skipped 0, invalid 1" in ran.out
        assert "canary" not in ran.text
    assert len(read_topics(settings, layout(settings).delay)) == 2
