"""`trace-stream check-config`: validate the environment, show the effective settings
with secrets masked, and check that Kafka, the topics and every tracker are reachable.

Exit 0: every check passed (warnings allowed). 1: a check failed. 2: the configuration
is invalid (raised as ConfigError before anything is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys

import httpx
from pydantic_settings import BaseSettings

from trace_stream import adapters
from trace_stream.adapters.base import AdapterContext
from trace_stream.core.clock import utc_now
from trace_stream.core.errors import TraceStreamError
from trace_stream.core.topics import layout
from trace_stream.ops import mask, probe, source
from trace_stream.ops.probe import Result
from trace_stream.settings import Settings

HELP = """\
Validate the configuration (the service's settings and each enabled adapter's own),
print the effective settings with secrets masked, then check that the Kafka brokers
answer, that the internal topics exist, and that each enabled adapter's endpoint
accepts connections (nothing is posted). Exit status: 0 all good (warnings allowed),
1 a check failed, 2 the configuration is invalid.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate settings and check Kafka, topics and trackers are reachable",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="how long each network check may take (default 5)",
    )
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_check(settings, args.timeout))


async def _check(settings: Settings, timeout: float) -> int:
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        built = adapters.build(
            settings.enabled_adapters,
            lambda name: AdapterContext(name, http, utc_now),
            limited=settings.trace_rate_limits,
        )
        try:
            models = {name: probe.settings_of(name) for name in built}
            show(settings, models)
            results = kafka(settings, timeout)
            for name, adapter in built.items():
                results += await probe.check(name, adapter, models[name], timeout)
            if settings.alert_webhook_url:
                url = settings.alert_webhook_url
                results.append(await probe.connect("alerts", "ALERT_WEBHOOK_URL", url, timeout))
        finally:
            for adapter in built.values():
                await adapter.aclose()
    return report(results)


def show(settings: Settings, models: dict[str, list[BaseSettings]]) -> None:
    """Print the effective settings, masked (see `mask`)."""
    sections = [("settings", mask.env_lines(settings))]
    sections.append(("librdkafka", mask.config_lines(settings.kafka_config())))
    for name, found in models.items():
        sections.append((f"adapter {name}", [line for m in found for line in mask.env_lines(m)]))
    for title, lines in sections:
        print(f"{title}:")
        width = max((len(k) for k, _ in lines), default=0)
        for key, value in lines:
            print(f"  {key.ljust(width)}  {value}")


def kafka(settings: Settings, timeout: float) -> list[Result]:
    """The broker answers within `timeout`; the internal and input topics exist (warn if not)."""
    try:
        existing = source.topics_on_broker(settings, timeout)
    except TraceStreamError as exc:
        return [Result("FAIL", "kafka", str(exc))]
    servers = settings.kafka_bootstrap_servers
    out = [Result("ok", "kafka", f"{servers} answered ({len(existing)} topics)")]
    topics = layout(settings)
    missing = [name for name in topics.internal if name not in existing]
    if missing:
        text = f"missing internal topics {', '.join(missing)}; run: trace-stream topics ensure"
        out.append(Result("warn", "topics", text))
    else:
        out.append(Result("ok", "topics", f"{len(topics.internal)} internal topics present"))
    if topics.input not in existing:
        text = f"input topic {topics.input} not found; check TRACE_INPUT_TOPIC"
        out.append(Result("warn", "topics", text))
    signals = settings.trace_signal_settings_topic
    if not signals:
        out.append(Result("ok", "consent", "no signal settings topic: the events' flags decide"))
    elif signals not in existing:
        text = (
            f"signal settings topic {signals} not found: the events' flags decide until it "
            "appears; check TRACE_SIGNAL_SETTINGS_TOPIC"
        )
        out.append(Result("warn", "consent", text))
    else:
        out.append(Result("ok", "consent", f"signal settings topic {signals} present"))
    return out


def report(results: list[Result]) -> int:
    """Passed checks and warnings on stdout, failures one line each on stderr; 0 or 1."""
    print("checks:")
    failed = [r for r in results if r.status == "FAIL"]
    for r in results:
        if r.status != "FAIL":
            print(f"  {r.status:<4}  {r.name:<10}  {r.message}", flush=True)
    for r in failed:
        print(f"trace-stream: check-config: {r.name}: {r.message}", file=sys.stderr)
    print(f"check-config: {len(failed)} check(s) failed" if failed else "check-config: all good")
    return 1 if failed else 0
