"""Start-up: check that librdkafka accepts a config (no network), then wait until a
broker answers, with backoff and one log line per attempt."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException

from trace_stream.core.backoff import Stopped, backoff
from trace_stream.core.errors import KafkaError
from trace_stream.kafka.common import Stuck, bounded, client_config, wrap

log = logging.getLogger(__name__)


def refusal(config: Mapping[str, Any], *, consumer: bool) -> str | None:
    """Why librdkafka refuses `config` for a consumer (else a transactional producer),
    or None if it accepts it. Builds a throwaway client without bootstrap servers, so
    nothing is contacted; librdkafka checks names, values and the SASL/SSL setup only
    when a client is created, never when a dict is built.
    """
    probe = {k: v for k, v in client_config(config).items() if k != "bootstrap.servers"}
    probe["log_level"] = 0
    try:
        if consumer:
            confluent_kafka.Consumer({"group.id": "trace-stream-config-check", **probe}).close()
        else:
            confluent_kafka.Producer({"transactional.id": "trace-stream-config-check", **probe})
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        return err.str() if isinstance(err, confluent_kafka.KafkaError) else str(exc)
    except (TypeError, ValueError) as exc:  # a value of a type confluent-kafka does not take
        return str(exc)
    return None


def wait_for_brokers(
    config: Mapping[str, Any],
    *,
    stop: threading.Event,
    timeout: float,
    attempt_timeout: float = 5.0,
) -> bool:
    """Block until a broker answers a metadata request: True; False if `stop` was set
    first; a KafkaError naming what to check after `timeout` seconds. Pauses between
    attempts from 1 s doubling to 10 s.

    The probing client is silenced (librdkafka would print every refused connection);
    each attempt logs one line instead.
    """
    if stop.is_set():
        return False
    try:
        client = confluent_kafka.Consumer(
            {**client_config(config), "group.id": "trace-stream-startup", "log_level": 0}
        )
    except KafkaException as exc:  # refused config: `refusal` says so before start-up
        raise wrap(exc, "Kafka client") from None
    deadline = time.monotonic() + timeout

    def metadata() -> None:
        wait = min(attempt_timeout, max(0.5, deadline - time.monotonic()))
        try:
            bounded(functools.partial(client.list_topics, timeout=wait), wait + 2, "metadata")
        except KafkaException as exc:
            raise wrap(exc, "metadata") from None

    def waiting(attempt: int, failure: BaseException, pause: float | None) -> None:
        code = failure.code if isinstance(failure, KafkaError) else ""
        retry_in = None if pause is None else round(pause, 1)  # None: giving up
        extra = {"attempt": attempt, "kafka_error": code, "retry_in": retry_in}
        log.warning("waiting for Kafka", extra=extra)

    retrying = backoff(
        first=1.0,
        cap=10.0,
        retry_on=lambda exc: isinstance(exc, KafkaError),
        stop=stop,
        deadline=deadline,
        said=waiting,
    )
    try:
        retrying(metadata)
    except Stopped:
        return False
    except KafkaError as failure:
        raise KafkaError(
            f"no Kafka broker at {config.get('bootstrap.servers')} answered within "
            f"{timeout:g}s ({failure.code or failure}): check KAFKA_BOOTSTRAP_SERVERS, "
            "KAFKA_SECURITY_PROTOCOL and that the brokers are up",
            failure.code,
        ) from None
    finally:
        with contextlib.suppress(KafkaError):
            bounded(client.close, 5, "close")
    if (attempt := retrying.statistics["attempt_number"]) > 1:
        log.info("Kafka answers", extra={"attempt": attempt})
    return True


class Ping:
    """Asks the brokers for metadata: does any answer within `timeout`? For readiness,
    on a client of its own, so no stage's state can delay the answer."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = {**client_config(config), "group.id": "trace-stream-ping", "log_level": 0}
        self._c = confluent_kafka.Consumer(self._config)

    def __call__(self, timeout: float) -> bool:
        call = functools.partial(self._c.list_topics, timeout=timeout)
        try:
            bounded(call, timeout + 1, "metadata")
        except Stuck:  # the call never returned: leave that client, ask with a new one
            self._c = confluent_kafka.Consumer(self._config)
            return False
        except (KafkaException, KafkaError):
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(KafkaError, KafkaException):
            bounded(self._c.close, 5, "close")
