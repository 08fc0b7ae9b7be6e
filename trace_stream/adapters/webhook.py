"""Generic webhook: POSTs the redacted trace as JSON with a configurable auth header."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..records import Trace
from ..settings import load
from .base import AdapterContext, Outcome, Retriable
from .http import classify, post_json


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", case_sensitive=False, extra="ignore")

    endpoint: AnyHttpUrl
    auth_header: str = "Authorization"
    auth_token: SecretStr | None = None
    timeout_seconds: float = Field(default=10, gt=0)


class WebhookAdapter:
    def __init__(self, name: str, settings: WebhookSettings, context: AdapterContext) -> None:
        self.name = name
        self._settings = settings
        self._context = context

    async def deliver(self, trace: Trace, idempotency_key: str) -> Outcome:
        s = self._settings
        headers = {"Idempotency-Key": idempotency_key}
        if s.auth_token is not None:
            headers[s.auth_header] = s.auth_token.get_secret_value()
        response = await post_json(
            self._context.http,
            str(s.endpoint),
            trace.model_dump(mode="json"),
            headers,
            s.timeout_seconds,
        )
        if isinstance(response, Retriable):
            return response
        return classify(response, self._context.clock())

    async def aclose(self) -> None:
        return None


def create(context: AdapterContext) -> WebhookAdapter:
    return WebhookAdapter(context.name, load(WebhookSettings), context)
