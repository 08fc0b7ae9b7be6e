"""The aiohttp-backed shared client keeps the adapters' contract: exact signed bytes,
and the same outcome classes as httpx's own transport, `connection` vs `timeout` included."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from devenv.tracker import Received, Tracker
from trace_stream.adapters.base import Delivered, Retriable
from trace_stream.adapters.transport import http_client

from .harness import SIGNING_SECRET, WebhookHarness, make_trace


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, tracker: Tracker) -> WebhookHarness:
    harness = WebhookHarness(monkeypatch, tracker)
    harness.client_factory = http_client
    return harness


def test_posts_the_signed_bytes(webhook: WebhookHarness) -> None:
    trace = make_trace(1)

    assert webhook.deliver([trace, trace]) == [Delivered(), Delivered()]

    for request in webhook.tracker.requests():
        assert Webhook(SIGNING_SECRET).verify(
            request.body, dict(request.headers)
        ) == trace.model_dump(mode="json")


@pytest.mark.parametrize(
    ("case", "reason"), [("connection", "connection"), ("server_error", "server_error")]
)
def test_failures_keep_their_reason(webhook: WebhookHarness, case: str, reason: str) -> None:
    webhook.fail(case)

    [outcome] = webhook.deliver([make_trace(1)])

    assert isinstance(outcome, Retriable)
    assert outcome.reason == reason


def test_a_stalled_tracker_is_a_timeout(webhook: WebhookHarness) -> None:
    webhook.hang(timeout=0.3)

    [outcome] = webhook.deliver([make_trace(1)])

    assert isinstance(outcome, Retriable)
    assert outcome.reason == "timeout"
    assert webhook.elapsed < 0.3 + 0.5


def test_a_dropped_connection_is_a_connection_failure(webhook: WebhookHarness) -> None:
    def drop(_: Received) -> None:
        raise ConnectionAbortedError  # the handler dies; the server closes the socket unanswered

    webhook.tracker.on_request = drop

    [outcome] = webhook.deliver([make_trace(1)])

    assert isinstance(outcome, Retriable)
    assert outcome.reason == "connection"
