"""Reading the dead-letter topic for `dlq list|show|stats|redrive`: every record from
the beginning to the current end, decoded, filtered."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from trace_stream import codec
from trace_stream.core.errors import InvalidEvent
from trace_stream.core.reasons import REASONS
from trace_stream.core.records import DeadLetter
from trace_stream.core.topics import layout
from trace_stream.ops import source
from trace_stream.ops.positions import parse_time
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

    @cached_property
    def _kept(self) -> dict[str, Any]:
        """The allow-listed fields of an invalid event, as stored."""
        try:
            kept = json.loads(self.letter.redacted or "{}")
        except ValueError:
            return {}
        return kept if isinstance(kept, dict) else {}

    @property
    def trade_id(self) -> str | None:
        """From the delivery, else from the allow-listed fields of an invalid event."""
        if self.letter.delivery is not None:
            return self.letter.delivery.trace.trade_id
        trade_id = self._kept.get("trade_id")
        return str(trade_id) if trade_id else None

    @property
    def signal_id(self) -> str | None:
        if self.letter.delivery is not None:
            return self.letter.delivery.trace.signal_id
        signal_id = self._kept.get("signal_id")
        return str(signal_id) if signal_id else None

    def as_json(self) -> dict[str, Any]:
        """The record in full, as stored (it holds only redacted trade facts)."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            **self.letter.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class Filter:
    """Every condition given must hold; None matches anything."""

    adapter: str | None = None
    reason: str | None = None
    trade_id: str | None = None
    signal_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    at: tuple[int, int] | None = None
    """(partition, offset) of one record."""

    def __call__(self, e: Entry) -> bool:
        letter = e.letter
        return (
            (self.adapter is None or letter.adapter == self.adapter)
            and (self.reason is None or letter.reason == self.reason)
            and (self.trade_id is None or e.trade_id == self.trade_id)
            and (self.signal_id is None or e.signal_id == self.signal_id)
            and (self.since is None or letter.dead_at >= self.since)
            and (self.until is None or letter.dead_at < self.until)
            and (self.at is None or (e.partition, e.offset) == self.at)
        )


def read(settings: Settings, keep: Filter) -> Iterator[Entry]:
    """The matching dead letters, partition by partition in offset order. A record that
    does not decode is reported on stdout (coordinates and cause only) and skipped."""
    topic = layout(settings).dead_letter
    source.require(settings, topic)
    with source.reader(settings) as r:
        ranges = source.everything(r, topic)
        if keep.at is not None:  # one record: read only it (empty if gone or not yet)
            partition, offset = keep.at
            ranges = {
                tp: (offset, offset + 1) if lo <= offset < hi else (hi, hi)
                for tp, (lo, hi) in ranges.items()
                if tp[1] == partition
            }
        progress = source.progress_for(ranges, "dead letters")
        for m in source.read(r, ranges, progress):
            try:
                letter = codec.decode_dead_letter(m.value or b"")
            except InvalidEvent as exc:
                progress.echo(f"unreadable {m.partition}:{m.offset}  {exc.reason}: {exc.detail}")
                continue
            entry = Entry(m.partition, m.offset, letter)
            if keep(entry):
                yield entry


def add_filters(p: argparse.ArgumentParser) -> None:
    """The options that choose dead letters, shared by list, stats and redrive."""
    p.add_argument("--adapter", metavar="NAME", help="only dead letters of this adapter")
    p.add_argument(
        "--reason",
        metavar="REASON",
        choices=REASONS,
        help="only this reason, e.g. permanent_failure (see: dlq reasons)",
    )
    p.add_argument("--trade", metavar="TRADE_ID", help="only this trade")
    p.add_argument("--signal", metavar="SIGNAL_ID", help="only this signal's trades")
    p.add_argument(
        "--since", type=parse_time, metavar="TIME", help="dead-lettered at or after (ISO 8601)"
    )
    p.add_argument("--until", type=parse_time, metavar="TIME", help="dead-lettered before")
    p.add_argument(
        "--at", type=at_offset, metavar="P:OFFSET", help="only the record at this partition:offset"
    )


def chosen(args: argparse.Namespace) -> Filter:
    """The filter the command line asks for."""
    return Filter(
        adapter=args.adapter,
        reason=args.reason,
        trade_id=args.trade,
        signal_id=args.signal,
        since=args.since,
        until=args.until,
        at=args.at,
    )


def at_offset(text: str) -> tuple[int, int]:
    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:OFFSET like 3:1200")
    return int(partition), int(offset)
