"""Myfxbook specifics: the body mapping and the reading of `{"error", "message"}` replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devenv.tracker import Reply, Tracker
from trace_stream.adapters.base import Delivered, Outcome, Permanent, Retriable, idempotency_key
from trace_stream.core.records import Trace

from .harness import TOKEN, MyfxbookHarness


@pytest.fixture
def myfxbook(monkeypatch: pytest.MonkeyPatch, tracker: Tracker) -> MyfxbookHarness:
    return MyfxbookHarness(monkeypatch, tracker)


TRACE = Trace(
    trade_id="trade-000042",
    signal_id="sig-eurusd-momentum",
    instrument="EURUSD",
    side="SELL",
    volume=1.5,
    entry_price=1.08761,
    exit_price=1.08423,
    opened_at=datetime(2025, 11, 20, 8, 15, 2, tzinfo=UTC),
    closed_at=datetime(2025, 11, 20, 14, 47, 55, 908000, tzinfo=UTC),
    profit_loss=507.0,
)


def test_body_uses_myfxbook_names_and_the_token_travels_in_a_header(
    myfxbook: MyfxbookHarness,
) -> None:
    assert myfxbook.deliver([TRACE]) == [Delivered()]

    [request] = myfxbook.tracker.requests()
    assert request.json() == {
        "ticket": "trade-000042",
        "signalId": "sig-eurusd-momentum",
        "symbol": "EURUSD",
        "action": "Sell",
        "lots": 1.5,
        "openTime": "2025-11-20T08:15:02Z",
        "openPrice": 1.08761,
        "closeTime": "2025-11-20T14:47:55.908000Z",
        "closePrice": 1.08423,
        "profit": 507.0,
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == idempotency_key("trade-000042", "myfxbook")
    assert TOKEN not in request.path


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Invalid session.", "auth"),
        ("Invalid token", "auth"),
        ("UNAUTHORIZED", "auth"),
        ("Session expired, please log in", "auth"),
        ("Unknown symbol XAUUSD", "rejected"),
        (None, "rejected"),
    ],
)
def test_error_true_is_permanent(
    myfxbook: MyfxbookHarness, message: str | None, reason: str
) -> None:
    body = {"error": True, "message": message}
    myfxbook.tracker.respond(Reply(200, json.dumps(body).encode()))

    [outcome] = myfxbook.deliver([TRACE])

    assert isinstance(outcome, Permanent)
    assert outcome.reason == reason
    assert message is None or message not in outcome.detail  # replies are never quoted


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"<html><body><h1>502 Bad Gateway</h1></body></html>", id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"ok": true}', id="no-error-key"),
        pytest.param(b'{"error": "false"}', id="error-not-boolean"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_a_2xx_that_is_not_the_json_reply_is_retriable(
    myfxbook: MyfxbookHarness, reply: bytes
) -> None:
    myfxbook.tracker.respond(Reply(200, reply, {"Content-Type": "text/html"}))

    [outcome] = myfxbook.deliver([TRACE])

    assert _is(outcome, Retriable, "malformed_response")


def test_an_http_error_status_wins_over_the_body(myfxbook: MyfxbookHarness) -> None:
    myfxbook.tracker.respond(Reply(503, b'{"error": false, "message": "ok"}'))

    [outcome] = myfxbook.deliver([TRACE])

    assert _is(outcome, Retriable, "server_error")


def _is(outcome: Outcome, kind: type[Retriable] | type[Permanent], reason: str) -> bool:
    return isinstance(outcome, kind) and outcome.reason == reason
