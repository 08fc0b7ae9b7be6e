"""trade.closed in the Schema Registry wire format, against a registry on loopback."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.registry import Registry
from tests.support import trade_event
from trace_stream import codec
from trace_stream.errors import InvalidEvent
from trace_stream.registry import RegistryDecoder, RegistryUnavailable, framed


def evolved_schema() -> dict[str, Any]:
    """The platform's newer schema: a field added (personal, at that), one with a default."""
    schema: dict[str, Any] = copy.deepcopy(
        json.loads((codec.schema_dir() / "trade_closed.avsc").read_text())
    )
    schema["fields"].insert(5, {"name": "user_phone", "type": "string"})
    schema["fields"].append({"name": "venue", "type": "string", "default": "LMAX"})
    return schema


@pytest.fixture
def registry() -> Iterator[Registry]:
    with Registry() as r:
        yield r


def test_a_newer_writer_schema_resolves_and_its_new_fields_are_dropped(registry: Registry) -> None:
    schema_id = registry.register(evolved_schema())
    event = {**trade_event("T-1"), "user_phone": "+44 canary", "venue": "XLON"}
    decode = RegistryDecoder(registry.url)
    decoded = decode(framed(schema_id, evolved_schema(), event))
    assert decoded["trade_id"] == "T-1"
    assert "user_phone" not in decoded
    assert "venue" not in decoded
    decode(framed(schema_id, evolved_schema(), event))
    assert registry.hits == 1, "writer schemas are fetched once per id"


def test_unknown_id_and_missing_header_are_invalid_events(registry: Registry) -> None:
    decode = RegistryDecoder(registry.url)
    with pytest.raises(InvalidEvent, match="schema id 99 unknown"):
        decode(framed(99, evolved_schema(), {**trade_event("T-1"), "user_phone": "x"}))
    with pytest.raises(InvalidEvent, match="no schema registry header"):
        decode(codec.encode("trade_closed", trade_event("T-2")))


def test_a_registry_hiccup_is_retried(registry: Registry) -> None:
    schema_id = registry.register(evolved_schema())
    registry.failures.extend([503, 503])
    decode = RegistryDecoder(registry.url, retry_for=10)
    decoded = decode(framed(schema_id, evolved_schema(), {**trade_event("T-1"), "user_phone": "x"}))
    assert decoded["trade_id"] == "T-1"
    assert registry.hits == 3


def test_a_registry_that_stays_down_is_an_error_not_a_dead_letter() -> None:
    decode = RegistryDecoder("http://127.0.0.1:9", retry_for=0.5)  # nothing listens there
    with pytest.raises(RegistryUnavailable):
        decode(framed(1, evolved_schema(), {**trade_event("T-1"), "user_phone": "x"}))
