"""Generic webhook: POSTs the redacted trace as JSON with a configurable auth header.

Headers: `Idempotency-Key` (stable per trade and adapter), the auth header when
WEBHOOK_AUTH_TOKEN is set, and when WEBHOOK_SIGNING_SECRET is set the Standard
Webhooks trio `webhook-id` (= the idempotency key), `webhook-timestamp` (unix seconds
from the context clock) and `webhook-signature` over the exact body bytes sent.
"""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trace_stream.adapters import signing
from trace_stream.adapters.base import AdapterContext, Outcome, Retriable
from trace_stream.adapters.http import classify, post_bytes
from trace_stream.core import http_headers
from trace_stream.core.records import Trace
from trace_stream.settings import load


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", case_sensitive=False, extra="ignore")

    endpoint: AnyHttpUrl = Field(description="the URL every trace is posted to")
    auth_header: str = Field(default="Authorization", description="header that carries the token")
    auth_token: SecretStr | None = Field(
        default=None, description="sent in the auth header; unset: no auth header"
    )
    signing_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret: whsec_<base64>, or a raw string"
    )
    timeout_seconds: float = Field(default=10, gt=0, description="deadline of one post")

    @field_validator("auth_header")
    @classmethod
    def _check_header(cls, value: str) -> str:
        if not http_headers.name_ok(value):
            raise ValueError(f"{http_headers.NAME_RULE} (unset: Authorization)")
        return value

    @field_validator("auth_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not http_headers.value_ok(value.get_secret_value()):
            raise ValueError(f"{http_headers.VALUE_RULE} (unset it for no auth header)")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing.decode_secret(value.get_secret_value())
        return value


class WebhookAdapter:
    def __init__(self, name: str, settings: WebhookSettings, context: AdapterContext) -> None:
        self.name = name
        self._settings = settings
        self._context = context
        secret = settings.signing_secret
        self._signing_key = (
            None if secret is None else signing.decode_secret(secret.get_secret_value())
        )

    async def deliver(self, trace: Trace, idempotency_key: str) -> Outcome:
        """Post once; never raises. Retrying is the core's job, so the key is reused."""
        s = self._settings
        # The JSON form of model_dump(mode="json"), compact and UTF-8 as encode_json
        # writes it, serialized in Rust: 2.6 against 7.9 us a body (docs/hot-path.md). A
        # Trace holds no NaN or infinity (allow_inf_nan=False), so it always has one.
        body = trace.model_dump_json().encode()
        headers = {"Idempotency-Key": idempotency_key}
        if s.auth_token is not None:
            headers[s.auth_header] = s.auth_token.get_secret_value()
        if self._signing_key is not None:
            timestamp = int(self._context.clock().timestamp())
            headers |= signing.headers(self._signing_key, idempotency_key, timestamp, body)
        response = await post_bytes(
            self._context.http, str(s.endpoint), body, headers, s.timeout_seconds
        )
        if isinstance(response, Retriable):
            return response
        return classify(response, self._context.clock())

    async def aclose(self) -> None:
        return None


def create(context: AdapterContext) -> WebhookAdapter:
    return WebhookAdapter(context.name, load(WebhookSettings), context)
