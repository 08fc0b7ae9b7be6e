"""`trace-stream dlq list|redrive`: inspect the dead-letter topic, send abandoned
deliveries back to the delay topic."""

from __future__ import annotations

import argparse
import heapq
import json
import textwrap
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from trace_stream.core.clock import Clock, utc_now
from trace_stream.core.errors import TraceStreamError
from trace_stream.core.reasons import REASONS
from trace_stream.ops import dead_letters, redrive
from trace_stream.ops.dead_letters import Entry, Filter, add_filters, at_offset, chosen
from trace_stream.settings import Settings

LIST_HELP = """\
Read the dead-letter topic from the beginning to its current end and print the
newest dead letters (after filtering), oldest first: partition:offset, when it was
dead-lettered, reason, adapter, trade id, attempts and the last error.
Reasons (`trace-stream dlq reasons` says what each means and what to do):
"""

COLUMNS = ("partition:offset", "dead_at", "reason", "adapter", "trade", "attempts", "last detail")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="list dead letters, or redrive abandoned deliveries",
        description="Inspect the dead-letter topic and redrive abandoned deliveries.",
    )
    actions = dlq.add_subparsers(
        dest="dlq_command", required=True, metavar="{list,show,stats,redrive,reasons}"
    )
    lst = actions.add_parser(
        "list",
        help="print the newest dead letters as a table",
        description=LIST_HELP + textwrap.indent(textwrap.fill(", ".join(REASONS)), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_filters(lst)
    lst.add_argument(
        "--limit",
        type=_count,
        default=50,
        metavar="N",
        help="show the newest N after filtering (default 50, 0 for all)",
    )
    _json(lst, "one JSON object per dead letter, in full, instead of the table")
    lst.set_defaults(func=list_letters)
    show = actions.add_parser(
        "show",
        help="print one dead letter in full, as stored (JSON)",
        description="Print the dead letter at PARTITION:OFFSET of the dead-letter topic "
        "in full, as stored: reason, detail, adapter, origin, the delivery with every "
        "attempt's error, or the allow-listed fields of an invalid event.",
    )
    show.add_argument("at", type=at_offset, metavar="P:OFFSET", help="e.g. 3:1200 (from dlq list)")
    show.set_defaults(func=show_letter)
    stats = actions.add_parser(
        "stats",
        help="count dead letters by reason, adapter and age",
        description="Count the matching dead letters by reason, by adapter and by age "
        "(since they were dead-lettered).",
    )
    add_filters(stats)
    _json(stats, "the counts as one JSON object")
    stats.set_defaults(func=count_letters)
    redrive.register(actions)
    actions.add_parser(
        "reasons",
        help="what each dead-letter reason means and what to do about it",
        description="Print every dead-letter reason: the stage that writes it, whether "
        "`dlq redrive` can send it again, what it means and what to do.",
    ).set_defaults(func=print_reasons)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return int(text)


def _json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=what)


def list_letters(settings: Settings, args: argparse.Namespace) -> int:
    """Print the table and a count line (or JSON lines); exit 0, also when nothing
    matched."""
    counter = _Counted(dead_letters.read(settings, chosen(args)))
    newest = heapq.nlargest(args.limit, counter, key=_age) if args.limit else list(counter)
    shown = sorted(newest, key=_age)
    if args.json:
        for e in shown:
            print(json.dumps(e.as_json(), sort_keys=True))
        return 0
    for line in table([row(e) for e in shown]):
        print(line)
    print(f"dlq: {len(shown)} shown of {counter.n} matching")
    return 0


def show_letter(settings: Settings, args: argparse.Namespace) -> int:
    """The record as JSON; exit 1 with one line when there is none at that place."""
    found = list(dead_letters.read(settings, Filter(at=args.at)))
    if not found:
        raise TraceStreamError(f"dlq show: no dead letter at {args.at[0]}:{args.at[1]}")
    print(json.dumps(found[0].as_json(), indent=2, sort_keys=True))
    return 0


AGES = ((3600, "under 1h"), (86_400, "1h to 1d"), (7 * 86_400, "1d to 7d"))


def count_letters(settings: Settings, args: argparse.Namespace, clock: Clock = utc_now) -> int:
    """Counts by reason, adapter and age, most first; exit 0."""
    now = clock()
    by: dict[str, Counter[str]] = {"reason": Counter(), "adapter": Counter(), "age": Counter()}
    for e in dead_letters.read(settings, chosen(args)):
        by["reason"][e.letter.reason] += 1
        by["adapter"][e.letter.adapter or "none"] += 1
        age = (now - e.letter.dead_at).total_seconds()
        by["age"][next((name for limit, name in AGES if age < limit), "over 7d")] += 1
    total = by["reason"].total()
    if args.json:
        print(json.dumps({"total": total, **{k: dict(v) for k, v in by.items()}}))
        return 0
    for name, counts in by.items():
        for value, n in counts.most_common():
            print(f"{name:<8} {value:<28} {n}")
    print(f"dlq: {total} matching")
    return 0


def _age(e: Entry) -> tuple[datetime, int, int]:
    return (e.letter.dead_at, e.partition, e.offset)


class _Counted(Iterable[Entry]):
    """Passes entries through, counting them."""

    def __init__(self, entries: Iterator[Entry]) -> None:
        self._entries = entries
        self.n = 0

    def __iter__(self) -> Iterator[Entry]:
        for e in self._entries:
            self.n += 1
            yield e


def row(e: Entry) -> tuple[str, ...]:
    """The table cells of one dead letter: identifiers, reasons and details only."""
    letter, delivery = e.letter, e.letter.delivery
    last = letter.detail
    if delivery is not None and delivery.errors:
        error = delivery.errors[-1]
        last = f"{error.reason}: {error.detail}"
    return (
        e.at,
        letter.dead_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        letter.reason,
        letter.adapter or "-",
        e.trade_id or "-",
        str(delivery.attempt) if delivery is not None else "-",
        last,
    )


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns under a header; the last column is not padded."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
        for r in [COLUMNS, *rows]
    ]


def print_reasons(_settings: Settings, _args: argparse.Namespace) -> int:
    for line in reasons_table():
        print(line)
    return 0


def reasons_table() -> list[str]:
    """The reasons as a Markdown table (the docs hold this table; a test compares)."""
    rows = [
        f"| `{name}` | {about.stage} | {'yes' if about.redrivable else 'no'} | "
        f"{about.meaning} | {about.action} |"
        for name, about in REASONS.items()
    ]
    return [
        "| reason | stage | redrive | meaning | what to do |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]
