"""One pydantic-settings model, read from the environment. Renders the librdkafka config.

Nothing else builds a librdkafka dict by hand. Invalid settings fail at start with
a ConfigError that names the environment variable to fix, in one line that never
holds a secret value (`config_errors` words them, and librdkafka's refusal of the
rendered dict). Values are typed and parsed once, at validation: durations are
timedeltas (tuples of them for a schedule) read from the text forms of
`core.durations`; the adapter list is a tuple.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from trace_stream.core import config_errors, reserved
from trace_stream.core.durations import (
    format_duration,
    format_schedule,
    parse_duration,
    parse_schedule,
)
from trace_stream.core.rate_limits import RateLimitConfig

CONSUMER_READ_AHEAD_KIB = 2048
CONSUMER_FETCH_MAX_BYTES = 2**20
"""What one consumer fetches and holds ahead of its stage (librdkafka's defaults: 64
MiB queued and 50 MiB a fetch, per consumer). Each stage applies records as they
come and 2 MiB is thousands of them; with the defaults the fetch buffers of the
input and delay consumers took about 90 MiB of a reading service's peak RSS
(`bench/memory.py`, 1,000,000 trades). The queue's bound is checked before a fetch,
so one fetch's answer comes on top of it, decompressed: at 4 MiB of lz4-compressed
trades that was about 70 MiB of records and their buffers (heaptrack), at 1 MiB it is
a quarter of that. KAFKA_EXTRA_CONFIG may set either."""
DEFAULT_RETRY_SCHEDULE = parse_schedule("5s,30s,5m,30m,1h")
"""The retry tiers when TRACE_RETRY_SCHEDULE is unset, at TRACE_RETRY_BACKOFF_BASE=5."""
_HTTP_URL = re.compile(r"https?://[^/?#\s]+", re.I)
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _parsed(parse: Callable[[str], object]) -> BeforeValidator:
    """Text (the environment) is parsed; a value given already typed is taken as is."""
    return BeforeValidator(lambda value: parse(value) if isinstance(value, str) else value)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise ValueError("name at least one adapter")
    return names


# Each type is read from its text form and written back to it (`model_dump`), which
# is also how `check-config` prints it. NoDecode: comma-separated text, not JSON.
Duration = Annotated[timedelta, _parsed(parse_duration), PlainSerializer(format_duration)]
Schedule = Annotated[
    tuple[timedelta, ...], NoDecode, _parsed(parse_schedule), PlainSerializer(format_schedule)
]
Names = Annotated[tuple[str, ...], NoDecode, _parsed(_names), PlainSerializer(",".join)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")
    _delay: timedelta = PrivateAttr()
    _retry_tiers: tuple[timedelta, ...] = PrivateAttr()

    kafka_bootstrap_servers: str = Field(
        default="localhost:9092", description="the brokers, comma-separated host:port"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how every client talks to the brokers"
    )
    kafka_sasl_mechanism: str | None = Field(
        default=None, description="SASL mechanism, e.g. SCRAM-SHA-512 or PLAIN"
    )
    kafka_sasl_username: str | None = Field(default=None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="SASL password")
    kafka_extra_config: dict[str, str] = Field(
        default_factory=dict,
        description="any other librdkafka setting, as a JSON object of strings, numbers and "
        "booleans; not a key the service sets itself (core/reserved.py)",
    )

    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        le=3_600_000,
        description="how soon a dead replica's partitions move",
    )

    schema_registry_url: str | None = Field(
        default=None, description="trade.closed in the registry wire format when set"
    )
    schema_registry_basic_auth: SecretStr | None = Field(default=None, description="user:password")

    trace_group_id: str = Field(
        default="trace-stream",
        description="consumer group of stage 1; the deliverers' groups are "
        "<TRACE_GROUP_ID>.deliver.<adapter>",
    )
    trace_instance_id: str = Field(
        default_factory=socket.gethostname,
        description="stable per replica; names the transactional producers",
    )
    trace_input_topic: str = Field(
        default="trade.closed", description="the platform's topic of closed trades"
    )
    trace_signal_settings_topic: str = Field(
        default="signal.tracing",
        description="compacted topic of each signal's current tracing settings, checked "
        "before every post; empty: the events' own flags only",
    )
    trace_input_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a new group starts on the input topic"
    )
    trace_topic_prefix: str = Field(
        default="trace",
        description="names the internal topics: <prefix>.delay, <prefix>.retry.<tier>, "
        "<prefix>.dlq",
    )
    trace_topic_partitions: int = Field(
        default=6,
        ge=1,
        description="partitions of the internal topics (topics ensure); bounds the useful "
        "replica count",
    )
    trace_topic_replication_factor: int = Field(default=-1, description="-1: broker default")
    trace_topic_retention_days: float = Field(
        default=7, gt=0, description="retention of the delay and retry topics"
    )
    trace_dead_letter_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="retention of the dead-letter topic; unset: TRACE_TOPIC_RETENTION_DAYS",
    )

    trace_delay_minutes: float = Field(
        default=5,
        ge=0,
        le=10_080,
        description="no trade is posted before closed_at + this (fractions allowed; a week "
        "at most)",
    )
    trace_max_clock_skew: Duration = Field(
        default=timedelta(minutes=5),
        description="how far in the future a closed_at or opened_at may be",
    )
    trace_earliest_close: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC),
        description="closed_at and opened_at before this are input errors",
    )
    trace_lookahead_memory_mib: float = Field(
        default=48,
        gt=0,
        description="MiB the deliveries read ahead and waiting to fall due may take, for the "
        "process, shared evenly by the enabled adapters; hold adapters x rate x (delay + "
        "disorder) x (record bytes + 148), see docs/scheduling.md",
    )
    trace_max_buffered: int = Field(
        default=1_000_000,
        ge=1,
        description="deliveries one adapter holds ahead of its committed position, a count "
        "beside TRACE_LOOKAHEAD_MEMORY_MIB (which binds first at the default)",
    )
    trace_retry_max_attempts: int = Field(default=5, ge=0, description="retries after the first")
    trace_retry_backoff_base: float = Field(
        default=5,
        gt=0,
        description="scales the default retry tiers by base / 5 (base 1: 1s,6s,1m,6m,12m)",
    )
    # NoDecode again: pydantic-settings looks for it outside the `| None` only.
    trace_retry_schedule: Annotated[Schedule | None, NoDecode] = Field(
        default=None,
        description="the retry tiers, comma-separated durations; unset: 5s,30s,5m,30m,1h "
        "scaled by TRACE_RETRY_BACKOFF_BASE",
    )
    trace_retry_jitter: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="a share of each retry tier added at random to a retry's wait (0 to 1)",
    )
    trace_enabled_adapters: Names = Field(
        default=("webhook",), description="the adapters this service runs, comma-separated"
    )
    # Keyed by adapter name, in the core's settings rather than each adapter's own
    # model: the deliverer applies the limit, so it works the same for every adapter
    # (entry-point ones too) without each one declaring and validating it again.
    trace_rate_limits: dict[str, RateLimitConfig] = Field(
        default_factory=dict,
        description='per adapter, as a JSON object: {"webhook": {"per_second": 20, '
        '"burst": 40, "per_day": 100000}}; an adapter left out is not limited',
    )

    trace_max_in_flight: int = Field(default=64, ge=1, description="concurrent posts per adapter")
    trace_breaker_threshold: int = Field(
        default=10, ge=0, description="permanent failures in a row that pause an adapter; 0: never"
    )
    trace_breaker_cooldown_seconds: float = Field(
        default=300, gt=0, description="how long a paused adapter waits before trying again"
    )
    trace_shutdown_timeout_seconds: float = Field(
        default=20,
        gt=0,
        description="bound on draining in-flight posts at shutdown; the process ends at "
        "most 10 s later",
    )
    trace_kafka_timeout_seconds: float = Field(
        default=10, gt=0, description="wall-time bound on one Kafka call or transaction"
    )
    trace_kafka_recovery_seconds: float = Field(
        default=45,
        gt=0,
        description="how long a stage tries to recover from a failed transaction in process; "
        "past it the service exits 1",
    )
    trace_startup_timeout_seconds: float = Field(
        default=300, gt=0, description="how long start-up waits for a broker to answer"
    )
    trace_backlog_refresh_seconds: float = Field(
        default=15,
        gt=0,
        description="how often queue pending and due lag are read from the broker",
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Slack-compatible endpoint the alerts are posted to"
    )
    alert_min_interval_seconds: float = Field(
        default=300, ge=0, description="at most one alert post per adapter and reason this often"
    )
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="/metrics, /healthz, /readyz; 0 disables"
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text on a terminal, JSON lines otherwise"
    )
    log_level: str = Field(
        default="INFO", description="DEBUG adds a line per trade (scheduled, posted, retried)"
    )

    @field_validator("kafka_extra_config", mode="before")
    @classmethod
    def _librdkafka_values(cls, value: object) -> object:
        return reserved.passthrough(value)

    @field_validator("trace_rate_limits")
    @classmethod
    def _limits_for_enabled_adapters(
        cls, value: dict[str, RateLimitConfig], info: ValidationInfo
    ) -> dict[str, RateLimitConfig]:
        """A limit for an adapter that does not run is a typo that would leave the
        real one unlimited."""
        unknown = sorted(set(value) - set(info.data.get("trace_enabled_adapters", value)))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not in TRACE_ENABLED_ADAPTERS")
        return value

    @field_validator("trace_input_topic", "trace_topic_prefix")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _TOPIC.fullmatch(value):
            raise ValueError("a Kafka topic name: letters, digits, '.', '_' or '-', 1 to 200")
        return value

    @field_validator("trace_signal_settings_topic")
    @classmethod
    def _optional_topic_name(cls, value: str) -> str:
        value = value.strip()
        if value and not _TOPIC.fullmatch(value):
            raise ValueError(
                "a Kafka topic name: letters, digits, '.', '_' or '-', 1 to 200; or empty for none"
            )
        return value

    @field_validator("alert_webhook_url", "schema_registry_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _HTTP_URL.match(value):
            raise ValueError("an http:// or https:// URL with a host")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.upper()), int):
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value

    @field_validator("trace_earliest_close")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def model_post_init(self, context: Any, /) -> None:
        # Derived once, here; model_copy(update=...) does not derive them again.
        self._delay = timedelta(minutes=self.trace_delay_minutes)
        scale = self.trace_retry_backoff_base / 5
        default = tuple(tier * scale for tier in DEFAULT_RETRY_SCHEDULE)
        self._retry_tiers = self.trace_retry_schedule or default

    @property
    def delay(self) -> timedelta:
        return self._delay

    @property
    def max_clock_skew(self) -> timedelta:
        return self.trace_max_clock_skew

    @property
    def enabled_adapters(self) -> tuple[str, ...]:
        return self.trace_enabled_adapters

    @property
    def lookahead_bytes(self) -> int:
        """Each adapter's share of TRACE_LOOKAHEAD_MEMORY_MIB, in bytes: every adapter
        runs a deliverer of its own, and the budget is for the process."""
        return int(self.trace_lookahead_memory_mib * 2**20) // len(self.trace_enabled_adapters)

    @property
    def retry_tiers(self) -> tuple[timedelta, ...]:
        """TRACE_RETRY_SCHEDULE as given, else the default scaled by BACKOFF_BASE / 5."""
        return self._retry_tiers

    def consumer_config(self, group_id: str, offset_reset: str) -> dict[str, Any]:
        return {
            "queued.max.messages.kbytes": CONSUMER_READ_AHEAD_KIB,
            "fetch.max.bytes": CONSUMER_FETCH_MAX_BYTES,
            **self.kafka_config(),
            "group.id": group_id,
            "auto.offset.reset": offset_reset,
            "session.timeout.ms": self.kafka_session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.kafka_session_timeout_ms // 4),
        }

    def kafka_config(self) -> dict[str, Any]:
        """The librdkafka settings shared by every client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
            "client.id": f"trace-stream-{self.trace_instance_id}",
        }
        if self.kafka_sasl_mechanism:
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            config["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        config.update(self.kafka_extra_config)
        return config


S = TypeVar("S", bound=BaseSettings)


def load(model: type[S], **overrides: Any) -> S:
    """Build a settings model; a value that does not parse or validate becomes one
    ConfigError naming each variable (and never quoting a value)."""
    prefix = str(model.model_config.get("env_prefix", ""))
    try:
        return model(**overrides)
    except SettingsError as exc:
        raise config_errors.unparsed(exc, prefix) from None
    except ValidationError as exc:
        raise config_errors.invalid(exc, prefix) from None
