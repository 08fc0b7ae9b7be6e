"""The signal settings table: memory per signal, and a replica's start with a large
settings topic (load time, readiness, memory).

`--mode memory` (no broker): builds `--signals` entries (default 100,000) the way the
follower does, from encoded settings records through `consent.parse` into a
`SignalTable`, with `--adapters` tracker names each (default 2) and ids shaped like
UUIDs, and reports the memory tracemalloc attributes to the table (the dict and every
entry it keeps alive, the records themselves freed), per signal.

`--mode load` (a broker: KAFKA_BOOTSTRAP_SERVERS, else a local one): publishes
`--signals` settings records to a fresh compacted topic (6 partitions), then starts
`trace-stream run` twice, with that topic and without one, and reports for each the
seconds until /readyz answers 200, the load time the service logs, and RSS once
ready. A replica is not ready before its table is loaded, so the difference in time
to ready is the load; the difference in RSS is the table's share of the process.

    .venv/bin/python -m bench.signal_table
    .venv/bin/python -m bench.signal_table --mode load --signals 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.common import (
    broker,
    counting_tracker,
    service_command,
    start_process,
    stop_process,
    usage,
    wait_ready,
)
from devenv.broker import free_port
from devenv.trades import create_topics, fresh_settings, service_env
from trace_stream.codec.wire import encode_signal_settings as encode
from trace_stream.codec.wire import parse_signal_settings as parse
from trace_stream.core.topics import TopicSpec
from trace_stream.pipeline.consent import SignalSettings, SignalTable

NAMES = ("webhook", "myfxbook", "file", "extra-1", "extra-2")


def records(signals: int, adapters: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of one settings record per signal; a third have tracing off."""
    now = datetime.now(UTC)
    out = []
    for i in range(signals):
        signal_id = str(uuid.UUID(int=i))
        entry = SignalSettings(signal_id, i % 3 != 0, frozenset(NAMES[:adapters]), now)
        out.append((signal_id.encode(), encode(entry)))
    return out


def memory(signals: int, adapters: int) -> float:
    """Bytes per signal held by a table of `signals` entries."""
    made = [
        (k, v, f"signal.tracing[{i % 6}]@{i}")
        for i, (k, v) in enumerate(records(signals, adapters))
    ]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    table = SignalTable()
    for key, value, where in made:
        table.apply(*parse(key, value, where=where))
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(table) == signals
    return grown / signals


def load(signals: int, adapters: int) -> dict[str, Any]:
    with broker() as bootstrap, counting_tracker() as tracker:
        settings = fresh_settings(bootstrap, metrics_port=free_port(), trace_topic_partitions=6)
        topic = settings.trace_signal_settings_topic
        create_topics(settings, TopicSpec(topic, 6, 1, {"cleanup.policy": "compact"}))
        producer = confluent_kafka.Producer(
            {**settings.kafka_config(), "linger.ms": 50, "log_level": 0}
        )
        began = time.monotonic()
        for key, value in records(signals, adapters):
            while True:
                try:
                    producer.produce(topic, value, key=key)
                    break
                except BufferError:
                    producer.poll(0.1)
        assert producer.flush(60) == 0
        published = time.monotonic() - began
        out: dict[str, Any] = {"signals": signals, "adapters": adapters, "publish_s": published}
        for name, follows in (("with_table", topic), ("without_table", "")):
            env = service_env(
                settings,
                TRACE_SIGNAL_SETTINGS_TOPIC=follows,
                WEBHOOK_ENDPOINT=f"{tracker.url}/hook",
                LOG_FORMAT="json",
            )
            log = Path(tempfile.gettempdir()) / f"bench-signals-{uuid.uuid4().hex[:6]}.log"
            started = time.monotonic()
            proc = start_process(service_command(), env, log)
            try:
                wait_ready(proc, settings.metrics_port, timeout=300)
                ready = time.monotonic() - started
                time.sleep(1)  # let the allocator settle before reading RSS
                u = usage(proc.pid)
            finally:
                stop_process(proc)
            logged = [
                json.loads(line)
                for line in log.read_text().splitlines()
                if '"signal settings loaded"' in line
            ]
            out[name] = {
                "ready_s": round(ready, 2),
                "load_s_logged": logged[0]["seconds"] if logged else None,
                "rss_mib": round(u.rss_mib, 1) if u else None,
            }
            log.unlink()
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--mode", choices=("memory", "load"), default="memory")
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--adapters", type=int, default=2, choices=range(1, len(NAMES) + 1))
    args = p.parse_args()
    if args.mode == "memory":
        per = memory(args.signals, args.adapters)
        print(
            f"{args.signals:,} signals, {args.adapters} trackers each: {per:,.0f} bytes per "
            f"signal, {per * args.signals / 2**20:,.1f} MiB in all (tracemalloc)"
        )
        return
    r = load(args.signals, args.adapters)
    w, wo = r["with_table"], r["without_table"]
    extra = (w["rss_mib"] - wo["rss_mib"]) if w["rss_mib"] and wo["rss_mib"] else float("nan")
    print(
        f"{r['signals']:,} signals published in {r['publish_s']:.1f} s; a replica is ready "
        f"after {w['ready_s']:.1f} s with the table (load logged: {w['load_s_logged']} s) "
        f"and {wo['ready_s']:.1f} s without; RSS once ready {w['rss_mib']} MiB vs "
        f"{wo['rss_mib']} MiB: {extra:+.1f} MiB, {extra * 2**20 / r['signals']:,.0f} bytes "
        "per signal"
    )


if __name__ == "__main__":
    main()
