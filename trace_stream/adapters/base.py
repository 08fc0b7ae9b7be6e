"""The adapter seam: one Protocol every tracker adapter satisfies, and its outcomes.

An adapter turns one redacted Trace into one Outcome. It never raises for a failed
post: every failure is classified as Retriable, Permanent or Gone with a `reason` from
the fixed FailReason set (safe as a metric label) and a `detail` built from status
codes and exception types only (never a URL with a token, never a secret).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import httpx

from trace_stream.core.outcomes import (
    Delivered,
    FailReason,
    Gone,
    Outcome,
    Permanent,
    Retriable,
)
from trace_stream.core.records import Trace


@runtime_checkable
class Adapter(Protocol):
    """A tracker. `deliver` must honour its own timeout and must not raise."""

    name: str

    async def deliver(self, trace: Trace, idempotency_key: str) -> Outcome: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class TraceBatch:
    """Consecutive traces from one partition of one topic, in offset order.

    `topic`, `partition` and `first_offset` are the same whenever the batch is formed
    again after a crash, so a sink can name its output after them and overwrite
    instead of duplicating.
    """

    topic: str
    partition: int
    first_offset: int
    traces: tuple[Trace, ...]
    offsets: tuple[int, ...] = ()
    """The offset of each trace (same order), when the caller knows them."""

    def offset_of(self, index: int) -> int:
        return self.offsets[index] if self.offsets else self.first_offset


@runtime_checkable
class BatchAdapter(Protocol):
    """A sink that takes traces in batches (file export). One outcome for the batch.

    The core gathers up to `batch_size` due traces of one partition, or what it has
    once the oldest waited `batch_max_age`, and starts the partition's next batch only
    after this one is committed.
    """

    name: str
    batch_size: int
    batch_max_age: timedelta

    def batch_key(self, trace: Trace) -> str:
        """Traces with different keys never share a batch (the file adapter: close date)."""
        ...

    async def deliver_batch(self, batch: TraceBatch) -> Outcome: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class AdapterContext:
    """What the core hands an adapter factory: shared clients, never settings of its own."""

    name: str
    http: httpx.AsyncClient
    clock: Callable[[], datetime]


AdapterFactory = Callable[[AdapterContext], "Adapter | BatchAdapter"]

_KEY_NAMESPACE = uuid.UUID("5f0c8a52-3c1e-4a8e-9a57-3a2f0b6f7c11")


def idempotency_key(trade_id: str, adapter: str) -> str:
    """Stable per (trade, adapter): the same on every retry, redrive and replay.

    `str(uuid.uuid5(_KEY_NAMESPACE, f"{adapter}\\x00{trade_id}"))`, byte for byte (a
    unit test holds it to that), built without the UUID object: a third of the cost,
    once per post."""
    name = f"{adapter}\x00{trade_id}".encode()
    h = bytearray(hashlib.sha1(_KEY_NAMESPACE.bytes + name, usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


__all__ = [
    "Adapter",
    "AdapterContext",
    "AdapterFactory",
    "BatchAdapter",
    "Delivered",
    "FailReason",
    "Gone",
    "Outcome",
    "Permanent",
    "Retriable",
    "TraceBatch",
    "idempotency_key",
]
