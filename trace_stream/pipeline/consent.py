"""Pure: consent at the moment of posting. A signal's current tracing settings, the
table of them, and the decision for one post.

A trade is posted to an adapter only if consent holds twice: when it closed (the
event's own `tracing_opt_in` and `tracing_adapters`, checked by `ingest`) and when
each attempt starts (the signal's latest record on the settings topic, checked by the
deliverer through `decide`). A signal with no entry follows the event's flags alone.

    settings record (key, Avro | tombstone) -> parse -> SignalTable.apply
    (table entry, adapter) -> decide -> Post | Withdrawn(reason) | Unknown(detail)

`Withdrawn` finishes a delivery without posting it: never retried, never
dead-lettered. `Unknown` stands for a signal whose latest record could not be read:
this service cannot tell whether consent holds, so the delivery is dead-lettered
(`signal_settings_unreadable`), to be redriven once the platform has fixed the
record, rather than posted against a withdrawal or dropped for good.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from trace_stream.core.errors import InvalidEvent

MAX_SIGNAL_ID = 128
"""Characters at most in a signal id (as for trade.closed's `signal_id`)."""
MAX_ADAPTERS = 32
"""Names at most in `tracing_adapters`."""
MAX_ADAPTER_NAME = 64

WithdrawnReason = Literal["consent_withdrawn", "adapter_removed"]
UNREADABLE: Final = "signal_settings_unreadable"
"""The dead-letter reason of a delivery whose signal's settings cannot be read."""


@dataclass(frozen=True, slots=True)
class SignalSettings:
    """A signal's latest tracing settings, as read from the settings topic."""

    signal_id: str
    enabled: bool
    adapters: frozenset[str]
    updated_at: datetime
    where: str = ""
    """Topic, partition and offset of the record, for `signals show`."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A signal whose latest settings record could not be read."""

    signal_id: str
    detail: str
    where: str = ""


Entry = SignalSettings | Unreadable


@dataclass(frozen=True, slots=True)
class Post:
    """Consent holds now (or the table has no entry: the event's flags decide)."""


@dataclass(frozen=True, slots=True)
class Withdrawn:
    reason: WithdrawnReason


@dataclass(frozen=True, slots=True)
class Unknown:
    detail: str


Decision = Post | Withdrawn | Unknown
POST = Post()


def decide(entry: Entry | None, adapter: str) -> Decision:
    """May `adapter` post a trade of this signal now? `entry`: the table's latest."""
    if entry is None:
        return POST
    if isinstance(entry, Unreadable):
        return Unknown(entry.detail)
    if not entry.enabled:
        return Withdrawn("consent_withdrawn")
    if adapter not in entry.adapters:
        return Withdrawn("adapter_removed")
    return POST


class InvalidSettings(ValueError):
    """A settings record this service cannot use; the message never quotes a value."""


Decode = Callable[[bytes], Mapping[str, Any]]
"""Bytes of a settings record -> its fields; raises InvalidEvent (`codec.wire`)."""


def parse(
    key: bytes | None, value: bytes | None, *, decode: Decode, where: str = ""
) -> tuple[str, Entry | None]:
    """One record of the settings topic -> (signal id, entry); None for a tombstone.

    Raises InvalidSettings only for a record without a usable key (no signal to
    attribute it to). Any other fault becomes an `Unreadable` entry for its key.
    """
    signal_id = _signal_id(key)
    if value is None:
        return signal_id, None
    try:
        return signal_id, _settings(signal_id, _decoded(decode, value), where)
    except InvalidSettings as exc:
        return signal_id, Unreadable(signal_id, str(exc), where)


def _signal_id(key: bytes | None) -> str:
    if not key:
        raise InvalidSettings("a settings record without a key (the signal id)")
    try:
        text = key.decode()
    except UnicodeDecodeError:
        raise InvalidSettings("a settings record whose key is not UTF-8") from None
    if not _clean(text, MAX_SIGNAL_ID):
        raise InvalidSettings(
            f"a settings record whose key is not a signal id (1 to {MAX_SIGNAL_ID} "
            "printable characters)"
        )
    return text


def _settings(signal_id: str, record: Mapping[str, Any], where: str) -> SignalSettings:
    if record.get("signal_id") != signal_id:
        raise InvalidSettings("signal_id differs from the record key")
    adapters = record.get("tracing_adapters") or []
    if len(adapters) > MAX_ADAPTERS or not all(_clean(a, MAX_ADAPTER_NAME) for a in adapters):
        raise InvalidSettings(
            f"tracing_adapters: at most {MAX_ADAPTERS} names of 1 to {MAX_ADAPTER_NAME} "
            "printable characters"
        )
    return SignalSettings(
        signal_id=signal_id,
        enabled=bool(record["tracing_enabled"]),
        adapters=_shared(frozenset(adapters)),
        updated_at=record["updated_at"],
        where=where,
    )


_SETS: dict[frozenset[str], frozenset[str]] = {}


def _shared(adapters: frozenset[str]) -> frozenset[str]:
    """One copy of each adapter list: signals share a handful of them, and a set is
    most of an entry's size (the table then costs about half as much per signal)."""
    if len(_SETS) < 1024:
        return _SETS.setdefault(adapters, adapters)
    return _SETS.get(adapters, adapters)


def _decoded(decode: Decode, value: bytes) -> Mapping[str, Any]:
    try:
        return decode(value)
    except InvalidEvent as exc:  # its detail names the fault, never a value
        raise InvalidSettings(exc.detail) from None


def _clean(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and all(
        unicodedata.category(ch)[0] not in "CZ" or ch == " " for ch in text
    )


class SignalTable:
    """Every signal's latest entry. One thread applies records (the follower), any
    thread reads: each read or write is a single dict operation, atomic under the GIL,
    and entries are immutable."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def apply(self, signal_id: str, entry: Entry | None) -> None:
        if entry is None:
            self._entries.pop(signal_id, None)
        else:
            self._entries[signal_id] = entry

    def get(self, signal_id: str) -> Entry | None:
        return self._entries.get(signal_id)

    def decide(self, signal_id: str, adapter: str) -> Decision:
        return decide(self._entries.get(signal_id), adapter)

    def __len__(self) -> int:
        return len(self._entries)
