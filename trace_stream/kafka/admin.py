"""Topic administration: list, create (idempotent) and describe."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from trace_stream.core.errors import KafkaError
from trace_stream.core.topics import TopicSpec
from trace_stream.kafka.common import client_config, wrap


class Admin:
    def __init__(self, config: Mapping[str, Any]) -> None:
        try:
            self._a = AdminClient(client_config(config))
        except KafkaException as exc:  # a config librdkafka refuses
            raise wrap(exc, "admin client") from None

    def existing(self, timeout: float = 10) -> dict[str, int]:
        """Topic name -> partition count."""
        try:
            md = self._a.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise wrap(exc, "list topics") from None
        return {name: len(t.partitions) for name, t in md.topics.items()}

    def create(self, specs: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created. Each step
        waits at most `timeout` seconds (a KafkaError after it)."""
        have = self.existing(timeout)
        todo = [s for s in specs if s.name not in have]
        if not todo:
            return []
        futures = self._a.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in todo
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        created = []
        for name, fut in futures.items():
            try:
                _result(fut, timeout, f"create topic {name}")
                created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise wrap(exc, f"create topic {name}") from None
        self._visible([s.name for s in todo], timeout)
        return created

    def _visible(self, names: Sequence[str], timeout: float) -> None:
        """Wait until `names` show in the metadata: the controller confirms a creation
        before every broker's metadata has it, and whoever lists topics next (a
        `topics describe`, `check-config`) must see them."""
        deadline = time.monotonic() + timeout
        while missing := [n for n in names if n not in self.existing(timeout)]:
            if time.monotonic() >= deadline:
                shown = ", ".join(missing)
                text = f"topics {shown} created but not in the metadata after {timeout:g}s"
                raise KafkaError(text, "_TIMED_OUT", retriable=True)
            time.sleep(0.1)

    def describe(self, names: Sequence[str], timeout: float = 10) -> dict[str, dict[str, str]]:
        """Topic -> its non-default configuration, within about `timeout` seconds."""
        res = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        out = {}
        for r, fut in self._a.describe_configs(res, request_timeout=timeout).items():
            try:
                entries = _result(fut, timeout, f"describe topic {r.name}")
            except KafkaException as exc:
                raise wrap(exc, f"describe topic {r.name}") from None
            out[r.name] = {k: e.value for k, e in entries.items() if not e.is_default}
        return out


def _result(fut: Future[Any], timeout: float, what: str) -> Any:
    """A future's result; a retriable KafkaError if it has none after `timeout` + 5 s."""
    try:
        return fut.result(timeout + 5)
    except TimeoutError:
        text = f"{what}: no answer within {timeout:g}s"
        raise KafkaError(text, "_TIMED_OUT", retriable=True) from None
