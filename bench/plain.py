"""Plain loops, the yardstick for the service: the same work with nothing else.

    python -m bench.plain post    # consume -> decode -> JSON body -> aiohttp POST -> commit
    python -m bench.plain jsonl   # consume -> decode -> redact -> JSON Lines file -> commit

Each reads `trade.closed` (plain Avro, `schemas/trade_closed.avsc`) with a
confluent-kafka consumer in its own group (earliest, no auto-commit) and commits a
record's offset only after its work is done; no delay topic, no validation, no
transactions, no metrics, no logging. It imports nothing from `trace_stream` (its
imports are then only what the loop needs) and reads the service's own variables:
KAFKA_BOOTSTRAP_SERVERS, TRACE_INPUT_TOPIC, TRACE_GROUP_ID, and

- post: WEBHOOK_ENDPOINT and TRACE_MAX_IN_FLIGHT (64). One aiohttp session, at most
  that many posts in flight; a post that fails is tried again after 0.5 s. The body
  is the allow-listed fields as JSON, with an `Idempotency-Key` per trade. Offsets
  are committed (asynchronously) every 0.2 s up to each partition's finished prefix.
- jsonl: FILE_EXPORT_DIR, FILE_EXPORT_BATCH_SIZE (500) and
  FILE_EXPORT_BATCH_MAX_AGE_SECONDS (60): per partition, a batch is written once it
  holds that many records or its oldest has waited that long; written like the
  service's local store (`dt=YYYY-MM-DD/{topic}-{partition}-{first offset}.jsonl`,
  temp file, fsync, rename, fsync of the directory), then its offsets committed.

Runs until SIGTERM or SIGINT, then commits what is done and exits 0.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import fastavro
from confluent_kafka import Consumer, Message, TopicPartition

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "trade_closed.avsc"
ALLOWED = (
    "trade_id",
    "signal_id",
    "instrument",
    "side",
    "volume",
    "entry_price",
    "exit_price",
    "opened_at",
    "closed_at",
    "profit_loss",
)
TP = tuple[str, int]


def _consumer() -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": os.environ["TRACE_GROUP_ID"] + ".plain",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([os.environ["TRACE_INPUT_TOPIC"]])
    return consumer


def _decoder() -> Any:
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))

    def decode(value: bytes) -> dict[str, Any]:
        return cast(dict[str, Any], fastavro.schemaless_reader(io.BytesIO(value), schema, None))

    return decode


def _redact(event: dict[str, Any]) -> dict[str, Any]:
    """The allow-listed fields, JSON-ready: side in capitals, times ISO 8601."""
    kept = {name: event[name] for name in ALLOWED}
    kept["side"] = str(kept["side"]).upper()
    for name in ("opened_at", "closed_at"):
        kept[name] = kept[name].isoformat()
    return kept


def _commit(consumer: Consumer, upto: dict[TP, int], wait: bool = False) -> None:
    """Commit the next offset to read of each partition in `upto` (then cleared)."""
    if upto:
        parts = [TopicPartition(t, p, o) for (t, p), o in upto.items()]
        if wait:
            consumer.commit(offsets=parts, asynchronous=False)
        else:
            consumer.commit(offsets=parts, asynchronous=True)
        upto.clear()


def _unpack(m: Message) -> tuple[TP, int, bytes] | None:
    """(partition, offset, value) of a record; None for an error or a tombstone."""
    topic, partition, offset, value = m.topic(), m.partition(), m.offset(), m.value()
    if m.error() or topic is None or partition is None or offset is None or value is None:
        return None
    return (topic, partition), offset, value


async def post_loop() -> None:
    """consume -> decode -> body -> POST (bounded in flight) -> commit the done prefix."""
    endpoint = os.environ["WEBHOOK_ENDPOINT"]
    in_flight = int(os.environ.get("TRACE_MAX_IN_FLIGHT", "64"))
    consumer = _consumer()
    decode = _decoder()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    slots = asyncio.Semaphore(in_flight)
    order: dict[TP, deque[int]] = {}  # offsets started, per partition, in order
    finished: dict[TP, set[int]] = {}
    upto: dict[TP, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=10)

    async def post(session: aiohttp.ClientSession, tp: TP, offset: int, value: bytes) -> None:
        try:
            trace = _redact(decode(value))
            body = json.dumps(trace).encode()
            headers = {"Idempotency-Key": f"plain:{trace['trade_id']}"}
            headers["Content-Type"] = "application/json"
            while True:
                try:
                    async with session.post(endpoint, data=body, headers=headers) as reply:
                        await reply.read()
                        if 200 <= reply.status < 300:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.5)
            finished[tp].add(offset)
        finally:
            slots.release()

    def advance() -> None:
        """Move each partition's committable position over its finished prefix."""
        for tp, offsets in order.items():
            done = finished[tp]
            while offsets and offsets[0] in done:
                done.discard(offset := offsets.popleft())
                upto[tp] = offset + 1

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        last_commit = time.monotonic()
        while not stop.is_set():
            messages: list[Message] = consumer.consume(500, 0)
            if not messages:
                await asyncio.sleep(0.005)
            for m in messages:
                if (record := _unpack(m)) is None:
                    continue
                tp, offset, value = record
                await slots.acquire()
                order.setdefault(tp, deque()).append(offset)
                finished.setdefault(tp, set())
                task = asyncio.create_task(post(session, tp, offset, value))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if time.monotonic() - last_commit > 0.2:
                advance()
                _commit(consumer, upto)
                last_commit = time.monotonic()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
    advance()
    _commit(consumer, upto, wait=True)
    consumer.close()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(root: Path, path: str, data: bytes) -> None:
    """Create or replace one file atomically, as the service's local store does."""
    target = root / path
    folder = target.parent
    created = not folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
    with temp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)
    _fsync_dir(folder)
    if created:
        _fsync_dir(folder.parent)


def jsonl_loop() -> None:
    """consume -> decode -> redact -> JSON Lines per partition batch -> write -> commit."""
    root = Path(os.environ["FILE_EXPORT_DIR"])
    size = int(os.environ.get("FILE_EXPORT_BATCH_SIZE", "500"))
    max_age = float(os.environ.get("FILE_EXPORT_BATCH_MAX_AGE_SECONDS", "60"))
    consumer = _consumer()
    decode = _decoder()
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, _: stopping.append(n))
    open_: dict[TP, list[tuple[int, str, bytes]]] = {}  # offset, close date, line
    since: dict[TP, float] = {}
    upto: dict[TP, int] = {}

    def write(tp: TP, items: list[tuple[int, str, bytes]]) -> None:
        days: dict[str, list[bytes]] = {}
        first: dict[str, int] = {}
        for offset, day, line in items:
            days.setdefault(day, []).append(line)
            first.setdefault(day, offset)
        for day, lines in days.items():
            name = f"dt={day}/{tp[0]}-{tp[1]}-{first[day]:020d}.jsonl"
            _write(root, name, b"\n".join(lines) + b"\n")
        upto[tp] = items[-1][0] + 1

    while not stopping:
        messages: list[Message] = consumer.consume(500, 0.1)
        now = time.monotonic()
        for m in messages:
            if (record := _unpack(m)) is None:
                continue
            tp, offset, value = record
            event = decode(value)
            day = event["closed_at"].astimezone(UTC).date().isoformat()
            open_.setdefault(tp, []).append((offset, day, json.dumps(_redact(event)).encode()))
            since.setdefault(tp, now)
        for tp in list(open_):
            items = open_[tp]
            while len(items) >= size:
                write(tp, items[:size])
                del items[:size]
                since[tp] = now
            if items and now - since[tp] >= max_age:
                write(tp, items)
                items.clear()
            if not items:
                del open_[tp], since[tp]
        _commit(consumer, upto)
    _commit(consumer, upto, wait=True)
    consumer.close()


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode == "post":
        asyncio.run(post_loop())
    elif mode == "jsonl":
        jsonl_loop()
    else:
        sys.exit("usage: python -m bench.plain post|jsonl")
    print(f"plain {mode}: stopped at {datetime.now(UTC).isoformat()}", flush=True)


if __name__ == "__main__":
    main()
