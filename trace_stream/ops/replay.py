"""`trace-stream replay`: read trade.closed again over a range and schedule those trades
once more on the delay topic, through the same plan as the service (opt-in,
validation, redaction, due time from `closed_at`), so nothing personal is written.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from trace_stream.codec.registry import input_decoder
from trace_stream.codec.wire import delivery_record
from trace_stream.core.clock import utc_now
from trace_stream.core.messages import Message
from trace_stream.core.records import Origin, TraceDelivery
from trace_stream.core.topics import layout
from trace_stream.kafka import Producer
from trace_stream.ops import positions, source
from trace_stream.ops.confirm import add_yes, confirm
from trace_stream.ops.progress import Progress
from trace_stream.ops.targets import targets
from trace_stream.pipeline.ingest import Limits, Plan, Reject, Skip, plan
from trace_stream.settings import Settings

FLUSH_EVERY = 10_000
"""Records produced between flushes, so a long replay never fills the producer queue."""

HELP = """\
Read the input topic (TRACE_INPUT_TOPIC) again from --from up to --to (or its
current end) and schedule those trades once more on the delay topic. Each event goes
through the same steps as in the service: opt-in, validation, redaction, and a due
time of closed_at + TRACE_DELAY_MINUTES, so old trades are due at once. Events that
are not opted in, or list no enabled adapter, are skipped; invalid events are
reported and counted but not dead-lettered again.

Times are Kafka record timestamps (when the event was written), ISO 8601, UTC unless
a zone is given. Trackers receive the same Idempotency-Key as the first time, so a
tracker that honours it records each trade once; running replay twice schedules the
trades twice.
"""

EXAMPLES = """\
examples:
  trace-stream replay --from 2026-11-24T10:00:00Z --to 2026-11-24T12:00:00Z --dry-run
  trace-stream replay --from 0:120,1:98 --adapter webhook
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="schedule trades from trade.closed again (from a time or an offset)",
        description=HELP,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        type=positions.parse_start,
        metavar="TIME|OFFSET",
        help="ISO-8601 time, an offset for every partition (120), or P:OFFSET,... (0:120,1:98)",
    )
    p.add_argument(
        "--to",
        dest="stop",
        type=positions.parse_time,
        metavar="TIME",
        help="stop before records written at or after this time (default: the end)",
    )
    p.add_argument(
        "--adapter",
        metavar="NAME",
        help="schedule for this enabled adapter only, for trades that list it",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print one line per trade that would be scheduled; write nothing",
    )
    add_yes(p)
    p.set_defaults(func=run)


def run(
    settings: Settings, args: argparse.Namespace, clock: Callable[[], datetime] = utc_now
) -> int:
    """Replay the range and print the summary; exit 0 even when some events were invalid."""
    wanted = targets(settings, args.adapter)
    topics = layout(settings)
    source.require(settings, topics.input, *([] if args.dry_run else [topics.delay]))
    with source.reader(settings) as r:
        ranges = positions.ranges(r, topics.input, args.start, args.stop)
        if not args.dry_run:
            records = sum(max(0, end - start) for start, end in ranges.values())
            confirm("replay", records, yes=args.yes)
        progress = source.progress_for(ranges, "replay")
        producer = None if args.dry_run else Producer(source.quiet_config(settings))
        sink = _Sink(topics.delay, producer, progress)
        decode = input_decoder(settings)
        for m in source.read(r, ranges, progress):
            origin = Origin(topic=m.topic, partition=m.partition, offset=m.offset)
            p = plan(
                m.value,
                origin,
                enabled_adapters=wanted,
                delay=settings.delay,
                now=clock(),
                decode=decode,
                limits=Limits(settings.max_clock_skew, settings.trace_earliest_close),
            )
            sink.take(p, m)
    sink.flush()
    print(sink.summary())
    return 0


class _Sink:
    """Where planned trades go: the delay topic, or one line each on stdout for a dry run."""

    def __init__(self, topic: str, producer: Producer | None, progress: Progress) -> None:
        self.topic = topic
        self.producer = producer
        self.progress = progress
        self.tally: Counter[str] = Counter()

    def take(self, p: Plan, m: Message) -> None:
        self.tally["read"] += 1
        if isinstance(p, Skip):
            self.tally["skipped"] += 1
        elif isinstance(p, Reject):
            self.tally["invalid"] += 1
            # reason and detail name fields and rules, never values (InvalidEvent's contract)
            letter = p.letter
            self.progress.echo(
                f"invalid {m.partition}:{m.offset}  {letter.reason}: {letter.detail}"
            )
        else:
            self._schedule(p.delivery, m)

    def _schedule(self, d: TraceDelivery, m: Message) -> None:
        try:  # as the scheduler does: what validation let through but Avro cannot hold
            record = delivery_record(self.topic, d)
        except Exception as exc:
            self.tally["invalid"] += 1
            self.progress.echo(
                f"invalid {m.partition}:{m.offset}  unprocessable: "
                f"{type(exc).__name__} while encoding the delivery"
            )
            return
        self.tally["scheduled"] += 1
        if self.producer is None:
            adapters_ = ",".join(d.adapters)
            self.progress.echo(
                f"{d.trace.trade_id}  adapters={adapters_}  due_at={d.due_at.isoformat()}"
                f"  from={m.partition}:{m.offset}"
            )
            return
        self.producer.produce(record)
        if self.tally["scheduled"] % FLUSH_EVERY == 0:
            self.producer.flush()

    def flush(self) -> None:
        if self.producer is not None:
            self.producer.flush()

    def summary(self) -> str:
        counts = ", ".join(
            f"{k} {self.tally[k]}" for k in ("read", "scheduled", "skipped", "invalid")
        )
        where = "dry run, nothing written" if self.producer is None else f"to {self.topic}"
        return f"replay: {counts} ({where})"
