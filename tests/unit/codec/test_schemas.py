"""Every example beside the schemas round-trips through its schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trace_stream import codec
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.records import DeadLetter, TraceDelivery

EXAMPLES = sorted((codec.schema_dir() / "examples").glob("*/*.json"))


def test_there_are_examples_for_every_schema() -> None:
    assert {p.parent.name for p in EXAMPLES} == {
        "trade_closed",
        "trace_delivery",
        "dead_letter",
        "signal_tracing",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_round_trips(path: Path) -> None:
    name = path.parent.name
    example = json.loads(path.read_text())
    decoded = codec.decode(name, codec.encode(name, example))
    again = codec.decode(name, codec.encode(name, decoded))
    assert again == decoded
    assert set(decoded) == set(example)
    for key, value in example.items():
        if key.endswith("_at") and isinstance(value, int):
            assert int(decoded[key].timestamp() * 1000) == value
    models: dict[str, type[TraceDelivery] | type[DeadLetter]] = {
        "trace_delivery": TraceDelivery,
        "dead_letter": DeadLetter,
    }
    model = models.get(name)
    if model is not None:  # the pydantic model agrees with the Avro schema
        dumped = model.model_validate(decoded).model_dump()
        assert codec.decode(name, codec.encode(name, dumped)) == decoded


@pytest.mark.parametrize(
    "garbage", [b"", b"\x00", b"not avro at all", b"\xff" * 64], ids=["empty", "nul", "text", "ff"]
)
def test_garbage_is_an_invalid_event_not_a_crash(garbage: bytes) -> None:
    with pytest.raises(InvalidEvent) as info:
        codec.decode("trade_closed", garbage)
    assert info.value.reason == "undecodable"


def test_trailing_bytes_are_rejected() -> None:
    example = json.loads((codec.schema_dir() / "examples/trade_closed/eurusd_buy.json").read_text())
    with pytest.raises(InvalidEvent):
        codec.decode("trade_closed", codec.encode("trade_closed", example) + b"extra")
