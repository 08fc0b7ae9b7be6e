"""`trace-stream dlq list|redrive`: inspect the dead-letter topic, send abandoned
deliveries back to the delay topic."""

from __future__ import annotations

import argparse
import heapq
import textwrap
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from trace_stream.core.reasons import REASONS
from trace_stream.ops import dead_letters, redrive
from trace_stream.ops.dead_letters import Entry, Filter
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
        dest="dlq_command", required=True, metavar="{list,redrive,reasons}"
    )
    lst = actions.add_parser(
        "list",
        help="print the newest dead letters as a table",
        description=LIST_HELP + textwrap.indent(textwrap.fill(", ".join(REASONS)), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _filters(lst)
    lst.add_argument(
        "--limit",
        type=_count,
        default=50,
        metavar="N",
        help="show the newest N after filtering (default 50, 0 for all)",
    )
    lst.set_defaults(func=list_letters)
    redrive.register(actions, _filters)
    actions.add_parser(
        "reasons",
        help="what each dead-letter reason means and what to do about it",
        description="Print every dead-letter reason: the stage that writes it, whether "
        "`dlq redrive` can send it again, what it means and what to do.",
    ).set_defaults(func=print_reasons)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", metavar="NAME", help="only dead letters of this adapter")
    p.add_argument(
        "--reason",
        metavar="REASON",
        choices=REASONS,
        help="only this reason, e.g. permanent_failure (see: dlq reasons)",
    )


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0 or more)")
    return int(text)


def list_letters(settings: Settings, args: argparse.Namespace) -> int:
    """Print the table and a count line; exit 0 (also when nothing matched)."""
    counter = _Counted(dead_letters.read(settings, Filter(args.adapter, args.reason)))
    newest = heapq.nlargest(args.limit, counter, key=_age) if args.limit else list(counter)
    shown = sorted(newest, key=_age)
    for line in table([row(e) for e in shown]):
        print(line)
    print(f"dlq: {len(shown)} shown of {counter.n} matching")
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
