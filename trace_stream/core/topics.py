"""The topic layout: names derived from settings, and the specs `topics ensure` creates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from trace_stream.core.durations import format_duration
from trace_stream.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class Topics:
    input: str
    delay: str
    retries: tuple[str, ...]
    """One topic per retry tier, named after its delay: `trace.retry.5s`, `trace.retry.1h`."""
    dead_letter: str

    @property
    def internal(self) -> tuple[str, ...]:
        return (self.delay, *dict.fromkeys(self.retries), self.dead_letter)


def retry_topic(prefix: str, delay: timedelta) -> str:
    return f"{prefix}.retry.{format_duration(delay)}"


def layout(settings: Settings) -> Topics:
    prefix = settings.trace_topic_prefix
    return Topics(
        input=settings.trace_input_topic,
        delay=f"{prefix}.delay",
        retries=tuple(retry_topic(prefix, t) for t in settings.retry_tiers),
        dead_letter=f"{prefix}.dlq",
    )


def signal_settings_spec(settings: Settings) -> TopicSpec | None:
    """The signal settings topic, compacted: the platform writes it, `topics ensure
    --signal-settings` may create it. None when TRACE_SIGNAL_SETTINGS_TOPIC is empty."""
    name = settings.trace_signal_settings_topic
    if not name:
        return None
    return TopicSpec(
        name,
        settings.trace_topic_partitions,
        settings.trace_topic_replication_factor,
        # Tombstones stay a day, so a replica loading meanwhile still sees the removal.
        {"cleanup.policy": "compact", "delete.retention.ms": "86400000"},
    )


def specs(settings: Settings) -> list[TopicSpec]:
    """The internal topics, with the configured partitions and retention (7 days by
    default; the dead-letter topic's can be set apart, since it is read by people)."""
    t = layout(settings)
    days = {name: settings.trace_topic_retention_days for name in t.internal}
    days[t.dead_letter] = settings.trace_dead_letter_retention_days or days[t.dead_letter]
    return [
        TopicSpec(
            name,
            settings.trace_topic_partitions,
            settings.trace_topic_replication_factor,
            {"retention.ms": str(round(days[name] * 86_400_000)), "cleanup.policy": "delete"},
        )
        for name in t.internal
    ]
