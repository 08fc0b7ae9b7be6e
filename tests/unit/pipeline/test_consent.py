"""consent: parsing settings records and the decision for one post, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from trace_stream import codec
from trace_stream.codec.wire import encode_signal_settings as encode
from trace_stream.codec.wire import parse_signal_settings as parse
from trace_stream.pipeline.consent import (
    MAX_ADAPTERS,
    InvalidSettings,
    Post,
    SignalSettings,
    SignalTable,
    Unknown,
    Unreadable,
    Withdrawn,
    decide,
)

AT = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def settings(signal: str = "SIG-7", enabled: bool = True, *adapters: str) -> SignalSettings:
    return SignalSettings(signal, enabled, frozenset(adapters or ("webhook",)), AT)


def record(s: SignalSettings) -> tuple[bytes, bytes]:
    return s.signal_id.encode(), encode(s)


def test_no_entry_leaves_it_to_the_event() -> None:
    assert decide(None, "webhook") == Post()


def test_enabled_with_the_adapter_posts() -> None:
    assert decide(settings("S", True, "webhook", "file"), "file") == Post()


def test_disabled_is_consent_withdrawn_for_every_adapter() -> None:
    entry = settings("S", False, "webhook", "file")
    assert decide(entry, "webhook") == Withdrawn("consent_withdrawn")
    assert decide(entry, "file") == Withdrawn("consent_withdrawn")


def test_an_adapter_no_longer_listed_is_removed() -> None:
    assert decide(settings("S", True, "file"), "webhook") == Withdrawn("adapter_removed")
    assert decide(settings("S", True, "file"), "file") == Post()


def test_unreadable_settings_are_unknown_not_post() -> None:
    assert isinstance(decide(Unreadable("S", "bad"), "webhook"), Unknown)


def test_a_record_round_trips() -> None:
    original = settings("SIG-7", True, "webhook", "myfxbook")
    signal_id, entry = parse(*record(original), where="t[0]@3")
    assert signal_id == "SIG-7"
    assert entry == SignalSettings("SIG-7", True, frozenset({"webhook", "myfxbook"}), AT, "t[0]@3")


def test_the_examples_beside_the_schema_parse() -> None:
    folder = codec.schema_dir() / "examples" / "signal_tracing"
    examples = sorted(folder.glob("*.json"))
    assert len(examples) >= 2
    for path in examples:
        raw = json.loads(path.read_text())
        value = encode(
            SignalSettings(
                raw["signal_id"],
                raw["tracing_enabled"],
                frozenset(raw["tracing_adapters"]),
                datetime.fromtimestamp(raw["updated_at"] / 1000, UTC),
            )
        )
        _, entry = parse(raw["signal_id"].encode(), value)
        assert isinstance(entry, SignalSettings)
        assert entry.enabled == raw["tracing_enabled"]
        assert entry.adapters == frozenset(raw["tracing_adapters"])
        assert int(entry.updated_at.timestamp() * 1000) == raw["updated_at"]


def test_a_tombstone_removes_the_entry() -> None:
    table = SignalTable()
    table.apply(*parse(*record(settings("S", False))))
    assert table.decide("S", "webhook") == Withdrawn("consent_withdrawn")
    table.apply(*parse(b"S", None))
    assert table.get("S") is None
    assert table.decide("S", "webhook") == Post()
    assert len(table) == 0


def test_the_latest_record_wins() -> None:
    table = SignalTable()
    for entry in (settings("S", True), settings("S", False), settings("S", True, "file")):
        table.apply(*parse(*record(entry)))
    assert table.decide("S", "webhook") == Withdrawn("adapter_removed")
    assert table.decide("S", "file") == Post()
    assert len(table) == 1


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00", b"garbage that is no avro", b"\xff" * 40],
    ids=["empty", "nul", "text", "ff"],
)
def test_garbage_makes_the_signal_unreadable(value: bytes) -> None:
    signal_id, entry = parse(b"S", value)
    assert signal_id == "S"
    assert isinstance(entry, Unreadable)
    assert "S" not in entry.detail.replace("Settings", "")  # names no value


def test_trailing_bytes_are_unreadable() -> None:
    _, entry = parse(b"S", encode(settings("S")) + b"x")
    assert isinstance(entry, Unreadable)


def test_a_value_for_another_signal_than_its_key_is_unreadable() -> None:
    _, entry = parse(b"OTHER", encode(settings("S")))
    assert isinstance(entry, Unreadable)
    assert "key" in entry.detail


def test_too_many_or_odd_adapter_names_are_unreadable() -> None:
    many = settings("S", True, *(f"a{i}" for i in range(MAX_ADAPTERS + 1)))
    assert isinstance(parse(*record(many))[1], Unreadable)
    odd = settings("S", True, "web\u202ehook")
    assert isinstance(parse(*record(odd))[1], Unreadable)
    assert isinstance(parse(*record(settings("S", True, "x" * 65)))[1], Unreadable)


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", b"x" * 129, b"bad\nkey"], ids=str)
def test_a_record_without_a_usable_key_is_refused(key: bytes | None) -> None:
    with pytest.raises(InvalidSettings):
        parse(key, encode(settings("S")))


def test_an_unreadable_record_replaced_by_a_valid_one_recovers() -> None:
    table = SignalTable()
    table.apply(*parse(b"S", b"junk"))
    assert isinstance(table.decide("S", "webhook"), Unknown)
    table.apply(*parse(*record(settings("S", True))))
    assert table.decide("S", "webhook") == Post()
