"""Types shared by the Kafka clients, and the conversions from confluent_kafka's."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import confluent_kafka
from confluent_kafka import KafkaException

from trace_stream.core.errors import KafkaError
from trace_stream.core.messages import Message, OutRecord


def client_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config a client is built with. librdkafka logs to stderr on its own: no
    Python `logger` callback, which librdkafka would call from its own threads, also
    while a client is being garbage collected (a known source of interpreter crashes
    in confluent-kafka-python); we saw one segfault in a test run with it."""
    return dict(config)


MANUAL = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": False,
}
"""What every consumer here is: no automatic commits or offset stores (offsets go
through transactions, or nowhere), committed records only, no end-of-partition events."""


def first_then_rest(
    c: confluent_kafka.Consumer, max_messages: int, timeout: float
) -> list[confluent_kafka.Message]:
    """Up to `max_messages`, returning as soon as one has arrived (or after `timeout`)
    with whatever else is already fetched. librdkafka's batch consume waits for a full
    batch or the whole timeout, which would add the timeout to every due post."""
    first = c.poll(timeout)
    if first is None:
        return []
    rest = c.consume(max_messages - 1, 0) if max_messages > 1 else []
    return [first, *rest]


_KafkaHeaders = list[tuple[str, str | bytes | None]]


class TransactionAborted(KafkaError):
    """The transaction was aborted; the caller must rewind to the committed offsets."""


class Stuck(KafkaError):
    """A client call did not return within the bound this service sets for it."""


T = TypeVar("T")


def on_thread(call: Callable[[], T], name: str) -> concurrent.futures.Future[T]:
    """`call()` on a daemon thread of its own; its result or exception in the future.
    A call that never returns leaves only its thread behind (daemon: it never holds
    the process)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            result = call()
        except BaseException as exc:  # the caller re-raises it from the future
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def bounded(call: Callable[[], T], timeout: float, what: str) -> T:
    """`call()`, or Stuck after `timeout` seconds of wall time.

    librdkafka does not always honour its own timeouts (send_offsets_to_transaction
    can block for good while the group coordinator is away: confluentinc/librdkafka
    #5456, #5511), so every call that talks to a broker runs on a helper thread that
    the caller stops waiting for. A call that never returns leaves its thread and
    client behind; the caller must stop using that client.
    """
    future = on_thread(call, f"kafka-call:{what}")
    concurrent.futures.wait([future], timeout)
    if not future.done():
        raise Stuck(f"{what}: no answer within {timeout:g}s", "_STUCK", retriable=True)
    return future.result()


def placement(r: OutRecord) -> dict[str, Any]:
    extra: dict[str, Any] = {"headers": cast(_KafkaHeaders, r.headers)}
    if r.partition is not None:
        extra["partition"] = r.partition
    return extra


def librdkafka_version() -> str:
    return str(confluent_kafka.libversion()[0])


def to_message(m: confluent_kafka.Message) -> Message:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    headers = [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs]
    topic, partition, offset = str(m.topic()), m.partition() or 0, m.offset() or 0
    kind, ms = m.timestamp()
    at = ms if kind != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None
    return Message(topic, partition, offset, m.key(), m.value(), headers, at)


def wrap(exc: KafkaException, what: str) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, confluent_kafka.KafkaError):
        return KafkaError(f"{what}: {err.str()}", err.name(), retriable=err.retriable())
    return KafkaError(f"{what}: {exc}")
