"""Memory of the signal settings table, per signal: what every replica holds in memory
for TRACE_SIGNAL_SETTINGS_TOPIC (the whole table, as a global table).

Builds `--signals` entries (default 100,000) the way the follower does, from encoded
settings records through `consent.parse` into a `SignalTable`, with `--adapters`
tracker names each (default 2) and ids shaped like UUIDs, and reports the memory
tracemalloc attributes to the table (the dict and every entry it keeps alive, the
records themselves freed), per signal. No broker: the table is the only thing that
grows with signals.

    .venv/bin/python -m bench.signal_table
    .venv/bin/python -m bench.signal_table --signals 1000000 --adapters 3
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
import uuid
from datetime import UTC, datetime

from trace_stream.consent import SignalSettings, SignalTable, encode, parse

NAMES = ("webhook", "myfxbook", "file", "extra-1", "extra-2")


def measure(signals: int, adapters: int) -> float:
    """Bytes per signal held by a table of `signals` entries."""
    now = datetime.now(UTC)
    records = []
    for i in range(signals):
        signal_id = str(uuid.UUID(int=i))
        entry = SignalSettings(signal_id, i % 3 != 0, frozenset(NAMES[:adapters]), now)
        records.append((signal_id.encode(), encode(entry), f"signal.tracing[{i % 6}]@{i}"))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    table = SignalTable()
    for key, value, where in records:
        table.apply(*parse(key, value, where))
    del key, value, where
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(table) == signals
    return grown / signals


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--adapters", type=int, default=2, choices=range(1, len(NAMES) + 1))
    args = p.parse_args()
    per = measure(args.signals, args.adapters)
    print(
        f"{args.signals:,} signals, {args.adapters} trackers each: {per:,.0f} bytes per "
        f"signal, {per * args.signals / 2**20:,.1f} MiB in all"
    )


if __name__ == "__main__":
    main()
