"""Trades and a service set up to receive them, for benchmarks run against a broker.

`fresh_settings` gives a run its own topics and consumer groups on a shared broker
(and creates the topics), `service_env` the environment a `trace-stream run` process
needs for those settings, `trade_event` a valid `trade.closed` event, and
`publish_trades` writes many of them fast (large lz4 batches).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import confluent_kafka

from trace_stream import codec
from trace_stream.core.topics import TopicSpec, specs
from trace_stream.kafka import Admin
from trace_stream.settings import Settings

_ADMINS: dict[str, Admin] = {}


def _admin(settings: Settings) -> Admin:
    """One admin client per cluster for the whole process: dropping one right after a
    request has crashed the interpreter in librdkafka's teardown. Quiet (log_level 0):
    it is still connected when a local broker stops; its failures raise anyway."""
    bootstrap = settings.kafka_bootstrap_servers
    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = Admin({**settings.kafka_config(), "log_level": 0})
    return _ADMINS[bootstrap]


def fresh_settings(bootstrap: str, **overrides: Any) -> Settings:
    """Settings with topics and group ids of their own, the topics created (the input
    topic with `trace_topic_partitions` partitions too). Other values are the
    service's defaults unless overridden."""
    uid = uuid.uuid4().hex[:8]
    settings = Settings(
        **{
            "kafka_bootstrap_servers": bootstrap,
            "trace_group_id": f"bench-{uid}",
            "trace_instance_id": f"bench-{uid}",
            "trace_input_topic": f"trade.closed.{uid}",
            "trace_topic_prefix": f"trace.{uid}",
            "trace_signal_settings_topic": f"signal.tracing.{uid}",  # absent unless created
            **overrides,
        }
    )
    partitions = settings.trace_topic_partitions
    create_topics(
        settings, *specs(settings), TopicSpec(settings.trace_input_topic, partitions, 1, {})
    )
    return settings


def create_topics(settings: Settings, *topics: TopicSpec) -> None:
    """Create the topics that do not exist yet, through the one admin client kept for
    the cluster."""
    _admin(settings).create(list(topics))


IMAGE_ENV = {"MALLOC_ARENA_MAX": "2"}
"""What the Dockerfile sets that changes how the service runs (checked against it by
tests/packaging/test_layout.py): services started here run as in the image."""


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without its own TRACE_/KAFKA_/WEBHOOK_ variables,
    plus every setting as the variable the service reads, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRACE_", "KAFKA_", "WEBHOOK_"))
    }
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = json.dumps(value) if isinstance(value, dict) else str(value)
    env.setdefault("MALLOC_ARENA_MAX", IMAGE_ENV["MALLOC_ARENA_MAX"])  # as in the image
    env.update(extra)
    return env


def trade_event(
    trade_id: str, closed_at: datetime, adapters: Sequence[str] = ("webhook",)
) -> dict[str, Any]:
    """A valid, opted-in `trade.closed` event for `adapters` (the webhook adapter by
    default). Its personal fields hold made-up values derived from the trade id."""
    return {
        "trade_id": trade_id,
        "signal_id": "SIG-1",
        "user_id": f"user-{trade_id}",
        "user_email": f"{trade_id}@example.com",
        "user_name": f"Person {trade_id}",
        "client_id": f"client-{trade_id}",
        "account_id": f"account-{trade_id}",
        "instrument": "EURUSD",
        "side": "BUY",
        "volume": 1.0,
        "entry_price": 1.08,
        "exit_price": 1.09,
        "opened_at": closed_at - timedelta(hours=1),
        "closed_at": closed_at,
        "profit_loss": 100.0,
        "fees": 1.5,
        "currency": "USD",
        "status": "closed",
        "tracing_opt_in": True,
        "tracing_adapters": list(adapters),
    }


BULK_PRODUCER: dict[str, Any] = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 512 * 1024,
    "enable.idempotence": True,
}
"""Producer settings for publishing many events at once: large lz4 batches."""


def publish_trades(
    settings: Settings,
    trade_ids: Iterable[str],
    closed_at: datetime,
    adapters: Sequence[str] = ("webhook",),
    progress: Callable[[int], None] | None = None,
    compression: str = "lz4",
) -> int:
    """Publish one `trade_event` per id to the input topic, keyed by its id, with a
    batching producer (`BULK_PRODUCER`, with `compression`: lz4 as a platform would,
    or none); return how many, once all are acknowledged. `progress(n)` is called every
    10,000 events. Raises if any was not delivered."""
    config = {**settings.kafka_config(), **BULK_PRODUCER, "compression.type": compression}
    producer = confluent_kafka.Producer(config)
    failed: list[str] = []

    def delivered(err: Any, _: Any) -> None:
        if err is not None:
            failed.append(str(err))

    topic = settings.trace_input_topic
    n = 0
    for n, trade_id in enumerate(trade_ids, 1):
        value = codec.encode("trade_closed", trade_event(trade_id, closed_at, adapters))
        while True:
            try:
                producer.produce(topic, value, trade_id.encode(), on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
            if progress:
                progress(n)
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"{left} events still queued, {len(failed)} failed: {failed[:3]}")
    return n
