"""`trace-stream dlq list|redrive` on a real broker, with a tracker that rejects and
then accepts."""

from __future__ import annotations

from datetime import UTC, datetime

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
