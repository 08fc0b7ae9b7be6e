"""Topic administration: list, create (idempotent) and describe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from .common import client_config, wrap


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


class Admin:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self._a = AdminClient(client_config(config))

    def existing(self, timeout: float = 10) -> dict[str, int]:
        """Topic name -> partition count."""
        try:
            md = self._a.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise wrap(exc, "list topics") from None
        return {name: len(t.partitions) for name, t in md.topics.items()}

    def create(self, specs: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created."""
        have = self.existing()
        todo = [s for s in specs if s.name not in have]
        if not todo:
            return []
        futures = self._a.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in todo
            ],
            operation_timeout=timeout,
        )
        created = []
        for name, fut in futures.items():
            try:
                fut.result()
                created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise wrap(exc, f"create topic {name}") from None
        return created

    def describe(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Topic -> its non-default configuration."""
        res = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        out = {}
        for r, fut in self._a.describe_configs(res).items():
            entries = fut.result()
            out[r.name] = {k: e.value for k, e in entries.items() if not e.is_default}
        return out
