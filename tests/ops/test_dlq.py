"""`trace-stream dlq list|redrive` on a real broker, with a tracker that rejects and
then accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devenv.tracker import Reply, Tracker
from tests.support import (
    canaries,
    make_settings,
    publish,
    read_topics,
    running,
    trade_event,
    wait_for,
)
from trace_stream import codec
from trace_stream.core.topics import layout
from trace_stream.ops import confirm

from .conftest import Cli


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line[:1].isdigit()]


def test_dead_letters_listed_filtered_and_redriven(
    kafka_bootstrap: str, tracker: Tracker, cli: Cli
) -> None:
    tracker.default = Reply(401)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    topics = layout(settings)
    publish(settings, trade_event("T-a"), trade_event("T-b"), trade_event("T-bad", status="open"))
    with running(settings):
        wait_for(lambda: len(read_topics(settings, topics.dead_letter)) == 3, what="3 dead letters")

    listed = cli("dlq", "list")
    assert listed.code == 0, listed.err
    rows = _rows(listed.out)
    assert len(rows) == 3
    cells = sorted(r.split(maxsplit=6)[2:] for r in rows)
    assert cells == [
        ["invalid_event", "-", "T-bad", "-", "status: not closed"],
        ["permanent_failure", "webhook", "T-a", "1", "auth: HTTP 401"],
        ["permanent_failure", "webhook", "T-b", "1", "auth: HTTP 401"],
    ]
    assert "dlq: 3 shown of 3 matching" in listed.out
    failed = cli("dlq", "list", "--reason", "permanent_failure")
    assert sorted(r.split()[4] for r in _rows(failed.out)) == ["T-a", "T-b"]
    assert len(_rows(cli("dlq", "list", "--adapter", "webhook").out)) == 2
    assert "dlq: 1 shown of 3 matching" in cli("dlq", "list", "--limit", "1").out

    dry = cli("dlq", "redrive", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.count("would redrive") == 2
    assert len(read_topics(settings, topics.delay)) == 2, "a dry run writes nothing"

    tracker.default = Reply(200)
    done = cli("dlq", "redrive")
    assert done.code == 0, done.err
    assert "not redrivable" in done.out and "T-bad" in done.out
    assert "matched 3, redriven 2, not redrivable (input events) 1" in done.out
    again = [
        d
        for d in (
            codec.decode_delivery(m.value() or b"") for m in read_topics(settings, topics.delay)
        )
        if d.errors
    ]
    assert sorted(d.trace.trade_id for d in again) == ["T-a", "T-b"]
    for d in again:
        assert d.attempt == 0 and d.adapters == ("webhook",)
        assert [(e.reason, e.detail) for e in d.errors] == [("auth", "HTTP 401")]
        assert d.due_at <= datetime.now(UTC)

    with running(settings):
        wait_for(lambda: len(tracker.requests(ok=True)) == 2, what="the redriven posts")
    rejected = {r.headers["Idempotency-Key"] for r in tracker.requests(ok=False)}
    accepted = {r.headers["Idempotency-Key"] for r in tracker.requests(ok=True)}
    assert accepted == rejected and len(accepted) == 2
    for text in (listed.text, dry.text, done.text):
        for trade_id in ("T-a", "T-b", "T-bad"):
            assert not any(v in text for v in canaries(trade_id).values())


def test_show_stats_filters_json_and_one_record_redrive(
    kafka_bootstrap: str, tracker: Tracker, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker.default = Reply(401)
    settings = make_settings(kafka_bootstrap, trace_delay_minutes=0)
    cli.use(settings, WEBHOOK_ENDPOINT=f"{tracker.url}/traces")
    topics = layout(settings)
    publish(
        settings,
        trade_event("T-a", signal_id="SIG-A"),
        trade_event("T-b", signal_id="SIG-B"),
        trade_event("T-bad", status="open", signal_id="SIG-A"),
    )
    with running(settings):
        wait_for(lambda: len(read_topics(settings, topics.dead_letter)) == 3, what="3 dead letters")

    lines = cli("dlq", "list", "--json").out.splitlines()
    letters = {
        d["delivery"]["trace"]["trade_id"] if d["delivery"] else "T-bad": d
        for d in map(json.loads, lines)
    }
    assert set(letters) == {"T-a", "T-b", "T-bad"}
    assert letters["T-a"]["reason"] == "permanent_failure"
    assert json.loads(letters["T-bad"]["redacted"])["trade_id"] == "T-bad"

    at = f"{letters['T-b']['partition']}:{letters['T-b']['offset']}"
    shown = cli("dlq", "show", at)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == letters["T-b"]
    missing = cli("dlq", "show", "0:99999")
    assert missing.code == 1 and "no dead letter at 0:99999" in missing.err

    def trades(*argv: str) -> list[str]:
        return sorted(r.split()[4] for r in _rows(cli("dlq", "list", *argv).out))

    assert trades("--trade", "T-b") == ["T-b"]
    assert trades("--signal", "SIG-A") == ["T-a", "T-bad"]
    assert trades("--at", at) == ["T-b"]
    assert trades("--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00Z") == []
    assert trades("--since", "2000-01-01T00:00:00Z") == ["T-a", "T-b", "T-bad"]

    stats = json.loads(cli("dlq", "stats", "--json").out)
    assert stats == {
        "total": 3,
        "reason": {"permanent_failure": 2, "invalid_event": 1},
        "adapter": {"webhook": 2, "none": 1},
        "age": {"under 1h": 3},
    }
    assert "dlq: 1 matching" in cli("dlq", "stats", "--reason", "invalid_event").out

    monkeypatch.setattr(confirm, "CONFIRM_OVER", 1)  # two redrivable letters: over it
    refused = cli("dlq", "redrive")
    assert refused.code == 2 and "rerun with --yes" in refused.err
    assert len(read_topics(settings, topics.delay)) == 2, "nothing written without --yes"
    one = cli("dlq", "redrive", "--at", at)
    assert one.code == 0, one.err
    assert "matched 1, redriven 1" in one.out
    redriven = [
        codec.decode_delivery(m.value() or b"") for m in read_topics(settings, topics.delay)
    ]
    assert [d.trace.trade_id for d in redriven if d.errors] == ["T-b"]
    assert "redriven 2" in cli("dlq", "redrive", "--yes").out
