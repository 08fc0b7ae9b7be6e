"""`trace-stream signals show SIGNAL_ID`: what the service would use for a signal.

Reads the whole settings topic (TRACE_SIGNAL_SETTINGS_TOPIC) as the service loads it,
keeps the signal's latest entry, and prints it with the decision for each enabled
adapter (the same `consent.decide` the deliverers call before each post).
"""

from __future__ import annotations

import argparse
import json

from trace_stream.codec.wire import parse_signal_settings
from trace_stream.core.errors import ConfigError
from trace_stream.ops import source
from trace_stream.pipeline.consent import (
    UNREADABLE,
    Entry,
    InvalidSettings,
    Post,
    SignalSettings,
    SignalTable,
    Unknown,
    Withdrawn,
    decide,
)
from trace_stream.settings import Settings

HELP = """\
Print the tracing settings the service would use for SIGNAL_ID, read from the
compacted topic TRACE_SIGNAL_SETTINGS_TOPIC, and, for each enabled adapter, whether a
trade of this signal would be posted now. A trade is posted only if its own event
opted in too (tracing_opt_in and tracing_adapters, checked when it closed).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "signals",
        help="show a signal's current tracing settings",
        description="Inspect the signal settings table (TRACE_SIGNAL_SETTINGS_TOPIC).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="{show}")
    show = actions.add_parser(
        "show",
        help="print what the service would use for a signal",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("signal_id", metavar="SIGNAL_ID")
    show.add_argument("--json", action="store_true", help="one JSON object instead of text")
    show.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    topic = settings.trace_signal_settings_topic
    if not topic:
        raise ConfigError(
            "TRACE_SIGNAL_SETTINGS_TOPIC is empty: no signal settings are read; each "
            "event's own opt-in and trackers decide"
        )
    existing = source.topics_on_broker(settings)
    entry = _latest(settings, topic, args.signal_id) if topic in existing else None
    decisions = {name: decide(entry, name) for name in settings.enabled_adapters}
    if args.json:
        print(json.dumps(_as_json(args.signal_id, topic, topic in existing, entry, decisions)))
    else:
        print(_as_text(args.signal_id, topic, topic in existing, entry, decisions))
    return 0


def _latest(settings: Settings, topic: str, signal_id: str) -> Entry | None:
    """The signal's entry after every record of the topic, as the service builds it."""
    table = SignalTable()
    wanted = signal_id.encode()
    with source.reader(settings) as r:
        ranges = source.everything(r, topic)
        progress = source.progress_for(ranges, f"reading {topic}")
        for m in source.read(r, ranges, progress):
            if m.key != wanted:
                continue
            try:
                table.apply(
                    *parse_signal_settings(
                        m.key, m.value, where=f"{m.topic}[{m.partition}]@{m.offset}"
                    )
                )
            except InvalidSettings:
                continue
    return table.get(signal_id)


def _code(decision: Post | Withdrawn | Unknown) -> str:
    """What becomes of a post: `post`, the withdrawal's reason, or the dead letter's."""
    if isinstance(decision, Post):
        return "post"
    if isinstance(decision, Withdrawn):
        return decision.reason
    return UNREADABLE


def _verdict(decision: Post | Withdrawn | Unknown) -> str:
    if isinstance(decision, Post):
        return "posted (if its event opted in to it)"
    if isinstance(decision, Withdrawn):
        return f"not posted: {decision.reason}"
    return f"dead-lettered: {_code(decision)}"


def _as_text(
    signal_id: str,
    topic: str,
    exists: bool,
    entry: Entry | None,
    decisions: dict[str, Post | Withdrawn | Unknown],
) -> str:
    if not exists:
        lines = [f"{topic} does not exist: each event's own opt-in and trackers decide"]
    elif entry is None:
        lines = [f"{signal_id}: no entry in {topic}: each event's own opt-in and trackers decide"]
    elif isinstance(entry, SignalSettings):
        lines = [
            f"{signal_id}: tracing {'enabled' if entry.enabled else 'disabled'}, "
            f"trackers [{', '.join(sorted(entry.adapters))}], "
            f"updated {entry.updated_at.isoformat()} ({entry.where})"
        ]
    else:
        lines = [f"{signal_id}: latest record unreadable ({entry.detail}) ({entry.where})"]
    lines += [f"  {name}: {_verdict(d)}" for name, d in decisions.items()]
    return "\n".join(lines)


def _as_json(
    signal_id: str,
    topic: str,
    exists: bool,
    entry: Entry | None,
    decisions: dict[str, Post | Withdrawn | Unknown],
) -> dict[str, object]:
    shown: dict[str, object] | None = None
    if isinstance(entry, SignalSettings):
        shown = {
            "tracing_enabled": entry.enabled,
            "tracing_adapters": sorted(entry.adapters),
            "updated_at": entry.updated_at.isoformat(),
            "record": entry.where,
        }
    elif entry is not None:
        shown = {"unreadable": entry.detail, "record": entry.where}
    return {
        "signal_id": signal_id,
        "topic": topic,
        "topic_exists": exists,
        "entry": shown,
        "adapters": {name: _code(d) for name, d in decisions.items()},
    }
