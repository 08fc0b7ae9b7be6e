"""Reading the dead-letter topic for `dlq list` and `dlq redrive`: every record from
the beginning to the current end, decoded, filtered by adapter and reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from trace_stream import codec
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.records import DeadLetter
from trace_stream.core.topics import layout
from trace_stream.ops import source
from trace_stream.settings import Settings


@dataclass(frozen=True)
class Entry:
    """One dead letter and where it sits in the dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def at(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def trade_id(self) -> str | None:
        """From the delivery, else from the allow-listed fields of an invalid event."""
        if self.letter.delivery is not None:
            return self.letter.delivery.trace.trade_id
        if self.letter.redacted:
            kept = json.loads(self.letter.redacted)
            trade_id = kept.get("trade_id") if isinstance(kept, dict) else None
            return str(trade_id) if trade_id else None
        return None


@dataclass(frozen=True)
class Filter:
    adapter: str | None = None
    reason: str | None = None

    def __call__(self, letter: DeadLetter) -> bool:
        return (self.adapter is None or letter.adapter == self.adapter) and (
            self.reason is None or letter.reason == self.reason
        )


def read(settings: Settings, keep: Filter) -> Iterator[Entry]:
    """The matching dead letters, partition by partition in offset order. A record that
    does not decode is reported on stdout (coordinates and cause only) and skipped."""
    topic = layout(settings).dead_letter
    source.require(settings, topic)
    with source.reader(settings) as r:
        ranges = source.everything(r, topic)
        progress = source.progress_for(ranges, "dead letters")
        for m in source.read(r, ranges, progress):
            try:
                letter = codec.decode_dead_letter(m.value or b"")
            except InvalidEvent as exc:
                progress.echo(f"unreadable {m.partition}:{m.offset}  {exc.reason}: {exc.detail}")
                continue
            if keep(letter):
                yield Entry(m.partition, m.offset, letter)
