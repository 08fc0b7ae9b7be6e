"""Webhook specifics: custom auth header, stable idempotency key, Standard Webhooks
signatures checked by an independent implementation (the `standardwebhooks` package)."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from devenv.tracker import Tracker
from trace_stream.adapters import signing
from trace_stream.adapters.base import Delivered
from trace_stream.core.errors import ConfigError

from .harness import SIGNING_KEY, SIGNING_SECRET, TOKEN, WebhookHarness, make_trace


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, tracker: Tracker) -> WebhookHarness:
    return WebhookHarness(monkeypatch, tracker)


def test_sends_the_token_in_the_configured_header(
    webhook: WebhookHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_AUTH_HEADER", "X-Api-Key")

    assert webhook.deliver([make_trace(1)]) == [Delivered()]

    [request] = webhook.tracker.requests()
    assert request.headers["X-Api-Key"] == TOKEN
    assert "Authorization" not in request.headers


def test_idempotency_key_is_stable_per_trade(webhook: WebhookHarness) -> None:
    same, other = make_trace(1), make_trace(2)

    webhook.deliver([same])
    webhook.deliver([same, other])

    first, again, different = webhook.tracker.requests()
    assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert first.headers["webhook-id"] == first.headers["Idempotency-Key"]
    assert different.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]


@pytest.mark.parametrize(
    ("configured", "verifier_key"),
    [
        pytest.param(SIGNING_SECRET, SIGNING_SECRET, id="whsec"),
        pytest.param("a raw shared secret", b"a raw shared secret", id="raw"),
    ],
)
def test_signature_verifies_with_standardwebhooks(
    webhook: WebhookHarness,
    monkeypatch: pytest.MonkeyPatch,
    configured: str,
    verifier_key: str | bytes,
) -> None:
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", configured)
    trace = make_trace(1)

    webhook.deliver([trace])

    [request] = webhook.tracker.requests()
    verified = Webhook(verifier_key).verify(request.body, dict(request.headers))
    assert verified == trace.model_dump(mode="json")
    assert request.headers["Authorization"] == TOKEN


def test_a_tampered_body_fails_verification(webhook: WebhookHarness) -> None:
    webhook.deliver([make_trace(1)])

    [request] = webhook.tracker.requests()
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SIGNING_SECRET).verify(
            request.body.replace(b"EURUSD", b"GBPUSD"), dict(request.headers)
        )


def test_no_signature_headers_without_a_secret(
    webhook: WebhookHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_SIGNING_SECRET")

    webhook.deliver([make_trace(1)])

    [request] = webhook.tracker.requests()
    assert not {"webhook-id", "webhook-signature"} & {k.lower() for k in request.headers}
    assert request.headers["Idempotency-Key"]


def test_a_malformed_whsec_secret_is_a_config_error_that_does_not_echo_it(
    webhook: WebhookHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", "whsec_not*base64*secretvalue")

    with pytest.raises(ConfigError, match="WEBHOOK_SIGNING_SECRET") as raised:
        webhook.deliver([make_trace(1)])
    assert "secretvalue" not in str(raised.value)


def test_sign_matches_the_reference_vector() -> None:
    # The example of the Standard Webhooks specification.
    key = signing.decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    signature = signing.sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.decode_secret(SIGNING_SECRET) == SIGNING_KEY
