"""The registry decoder's contract, against the stand-in (devenv/registry.py): replies a
real registry cannot be made to give on demand (scripted 503s, a body that is no Avro
schema), request counts, and no registry at all. Fast and broker-free. What a real
registry serves is tested against Apicurio in tests/integration/test_registry_input.py."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from devenv.registry import Registry
from tests.support import trade_event
from trace_stream import codec
from trace_stream.codec.registry import RegistryDecoder, RegistryUnavailable, framed
from trace_stream.core.errors import InvalidEvent


def evolved_schema() -> dict[str, Any]:
    """The platform's newer schema: a field added (personal, at that), one with a default."""
    schema: dict[str, Any] = copy.deepcopy(
        json.loads((codec.schema_dir() / "trade_closed.avsc").read_text())
    )
    schema["fields"].insert(5, {"name": "user_phone", "type": "string"})
    schema["fields"].append({"name": "venue", "type": "string", "default": "LMAX"})
    return schema


def decoder(url: str, retry_for: float = 60) -> closing[RegistryDecoder]:
    return closing(RegistryDecoder(url, retry_for=retry_for))


@pytest.fixture
def registry() -> Iterator[Registry]:
    with Registry() as r:
        yield r


def test_a_writer_schema_is_fetched_once_per_id(registry: Registry) -> None:
    schema_id = registry.register(evolved_schema())
    event = {**trade_event("T-1"), "user_phone": "+44 canary", "venue": "XLON"}
    with decoder(registry.url) as decode:
        for _ in range(3):
            assert decode(framed(schema_id, evolved_schema(), event))["trade_id"] == "T-1"
    assert registry.hits == 1


def test_a_message_without_the_header_is_an_invalid_event(registry: Registry) -> None:
    with decoder(registry.url) as decode, pytest.raises(InvalidEvent, match="no schema registry"):
        decode(codec.encode("trade_closed", trade_event("T-2")))
    assert registry.hits == 0


def test_a_registry_serving_something_that_is_not_avro_is_an_invalid_event(
    registry: Registry,
) -> None:
    """A real registry refuses to register such a schema, so only the stand-in serves one."""
    registry.schemas[1] = "not json"
    with decoder(registry.url) as decode, pytest.raises(InvalidEvent, match="not an Avro schema"):
        decode(framed(1, evolved_schema(), {**trade_event("T-1"), "user_phone": "x"}))


def test_a_registry_hiccup_is_retried(registry: Registry) -> None:
    schema_id = registry.register(evolved_schema())
    registry.failures.extend([503, 503])
    event = {**trade_event("T-1"), "user_phone": "x"}
    with decoder(registry.url, retry_for=10) as decode:
        assert decode(framed(schema_id, evolved_schema(), event))["trade_id"] == "T-1"
    assert registry.hits == 3


def test_a_registry_that_stays_down_is_an_error_not_a_dead_letter() -> None:
    # nothing listens on port 9
    with decoder("http://127.0.0.1:9", retry_for=0.5) as decode, pytest.raises(RegistryUnavailable):
        decode(framed(1, evolved_schema(), {**trade_event("T-1"), "user_phone": "x"}))
