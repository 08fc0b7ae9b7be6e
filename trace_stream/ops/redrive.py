"""`trace-stream dlq redrive`: abandoned deliveries back to the delay topic, due now."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from trace_stream.codec.wire import delivery_record
from trace_stream.core.clock import utc_now
from trace_stream.core.records import DeadLetter, TraceDelivery
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.ops import dead_letters, source
from trace_stream.ops.confirm import add_yes, confirm
from trace_stream.ops.dead_letters import Entry, add_filters, chosen
from trace_stream.ops.targets import targets
from trace_stream.settings import Settings

HELP = """\
Send the matching abandoned deliveries (reasons permanent_failure and
retries_exhausted) back to the delay topic, each for the adapter that gave up on it:
attempt 0 (a fresh set of retries), due now, the earlier errors kept as history.

Invalid input events (invalid_event, undecodable) never became a delivery and cannot
be redriven: they are counted, not sent. Fix the producer and publish the event again.

The dead-letter topic is not changed, so running redrive twice redrives twice. Each
post carries the same Idempotency-Key as before (stable per trade and adapter), so a
tracker that honours it records the trade once.
"""


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "redrive",
        help="send abandoned deliveries back to the delay topic",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_filters(p)
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be redriven; write nothing"
    )
    add_yes(p)
    p.set_defaults(func=run)


def again(letter: DeadLetter, now: datetime) -> TraceDelivery | None:
    """The delivery to schedule again, for the adapter that abandoned it: attempt 0,
    due `now`, errors (and first_attempt_at) kept. None for a letter without a
    delivery or an adapter (a bad input event), which cannot be redriven."""
    if letter.delivery is None or letter.adapter is None:
        return None
    return letter.delivery.model_copy(
        update={"adapters": (letter.adapter,), "attempt": 0, "due_at": now}
    )


def run(
    settings: Settings,
    args: argparse.Namespace,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """Redrive and print one line per letter and a summary; exit 0."""
    if args.adapter:
        targets(settings, args.adapter)  # one-line error for an unknown or disabled adapter
    delay = layout(settings).delay
    source.require(settings, delay)
    entries = list(dead_letters.read(settings, chosen(args)))
    now = clock()
    planned = [(e, again(e.letter, now)) for e in entries]
    outcomes = [_outcome(settings, e, delivery) for e, delivery in planned]
    if not args.dry_run:
        confirm("dlq redrive", outcomes.count("redriven"), yes=args.yes)
    producer = None if args.dry_run else Producer(source.quiet_config(settings))
    tally: Counter[str] = Counter()
    for (e, delivery), outcome in zip(planned, outcomes, strict=True):
        tally[outcome] += 1
        if producer is not None and delivery is not None and outcome == "redriven":
            producer.produce(delivery_record(delay, delivery))
        print(_line(e, delivery, outcome, args.dry_run))
    if producer is not None:
        producer.flush()
    print(_summary(tally, args.dry_run))
    return 0


def _outcome(settings: Settings, e: Entry, delivery: TraceDelivery | None) -> str:
    if delivery is None:
        return "invalid"
    if e.letter.adapter not in settings.enabled_adapters:
        return "disabled"
    return "redriven"


def _line(e: Entry, delivery: TraceDelivery | None, outcome: str, dry_run: bool) -> str:
    trade = e.trade_id or "-"
    if outcome == "invalid":
        return f"not redrivable {e.at}  {trade}  {e.letter.reason}: input event, not a delivery"
    adapter = e.letter.adapter
    if outcome == "disabled":
        return f"skipped {e.at}  {trade}  adapter={adapter}: not in TRACE_ENABLED_ADAPTERS"
    errors = len(delivery.errors) if delivery is not None else 0
    verb = "would redrive" if dry_run else "redriven"
    return f"{verb} {e.at}  {trade}  adapter={adapter}  earlier errors={errors}"


def _summary(tally: Counter[str], dry_run: bool) -> str:
    text = (
        f"dlq redrive: matched {tally.total()}, redriven {tally['redriven']}, "
        f"not redrivable (input events) {tally['invalid']}, adapter not enabled "
        f"{tally['disabled']}"
    )
    return text + (" (dry run, nothing written)" if dry_run else "")
