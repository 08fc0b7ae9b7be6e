"""KAFKA_EXTRA_CONFIG cannot override a key the service sets itself: each one is
refused in one line that names it and says why (or which setting to use)."""

from __future__ import annotations

import json

import pytest

from trace_stream.core.errors import ConfigError
from trace_stream.core.reserved import RESERVED
from trace_stream.kafka.common import MANUAL
from trace_stream.settings import Settings, load


@pytest.mark.parametrize("key", sorted(RESERVED))
def test_each_reserved_key_is_refused(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("KAFKA_EXTRA_CONFIG", json.dumps({f" {key}": "canary-value"}))
    with pytest.raises(ConfigError) as raised:
        load(Settings)
    text = str(raised.value)
    assert text.startswith("invalid configuration: KAFKA_EXTRA_CONFIG: ")
    assert f"{key} is set by the service: {RESERVED[key]}" in text
    assert "canary" not in text and "\n" not in text


def test_other_keys_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_EXTRA_CONFIG", '{"socket.keepalive.enable": "true"}')
    assert load(Settings).kafka_config()["socket.keepalive.enable"] == "true"


def test_every_key_the_code_sets_on_purpose_is_reserved() -> None:
    """What the settings render for every client and consumer, bar tuning that
    KAFKA_EXTRA_CONFIG may change (the read-ahead and fetch size), is reserved."""
    s = Settings(kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u", kafka_sasl_password="p")
    rendered = set(s.consumer_config("g", "earliest")) - {
        "queued.max.messages.kbytes",
        "fetch.max.bytes",
    }
    assert rendered <= set(RESERVED)
    assert set(MANUAL) <= set(RESERVED)
