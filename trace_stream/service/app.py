"""Composition: build the stages from settings and run them until stopped.

    schedule          (group <id>)                : trade.closed -> delay topic | dead letter
    signals           (no group, every partition) : signal settings topic -> the consent table
    deliver.<adapter> (group <id>.deliver.<name>) : delay + retry topics -> adapter -> ...
    backlog           (reads, never joins)        : the queues' pending and due lag, and the
                                                    input lag -> metrics
    kafka             (metadata only)             : does a broker answer? -> readiness

One deliverer per enabled adapter, each on its own thread, posts on one asyncio loop.
The deliverers start once the consent table is loaded. Adding a stage is its module
and one line in `_stages`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client import CollectorRegistry

from trace_stream import adapters
from trace_stream.adapters import transport
from trace_stream.adapters.base import Adapter, AdapterContext, BatchAdapter
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.codec.registry import Decoder, RegistryDecoder, input_decoder
from trace_stream.core.clock import Clock, utc_now
from trace_stream.core.topics import Topics, layout
from trace_stream.kafka import Consumer, Follower, Reader, TransactionalProducer, wait_for_brokers
from trace_stream.kafka.connect import Ping
from trace_stream.pipeline.consent import SignalTable
from trace_stream.pipeline.ingest import Limits
from trace_stream.pipeline.routing import RetryPolicy
from trace_stream.service.supervisor import Supervisor
from trace_stream.settings import Settings
from trace_stream.stages.backlog import PROBE_SAMPLE, BacklogProbe
from trace_stream.stages.deliver import Deliverer
from trace_stream.stages.reach import KafkaWatch
from trace_stream.stages.schedule import Scheduler
from trace_stream.stages.signals import SignalFollower
from trace_stream.stages.stage import Stage
from trace_stream.state.breaker import Breaker
from trace_stream.state.limits import RateLimit
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    clock: Clock = utc_now
    producer_factory: Callable[..., TransactionalProducer] = TransactionalProducer
    """Called as (librdkafka config, transactional id, timeout=, recovery=, stop=)."""
    stop: threading.Event = field(default_factory=threading.Event)
    _decoder: Decoder | None = None

    def __post_init__(self) -> None:
        self.health = Health()
        self.signals = SignalTable()
        self.stages: list[Stage] = []
        self._supervisor = Supervisor(self.stop)

    def start(self) -> None:
        """Wait for Kafka (until `stop`, or a KafkaError after the start-up timeout), build
        every stage, then run each on its own thread."""
        s = self.settings
        self.runner = AsyncRunner()
        self.http = transport.http_client()
        self.adapters = adapters.build(
            s.enabled_adapters,
            lambda name: AdapterContext(name, self.http, self.clock),
            limited=s.trace_rate_limits,
        )
        if not wait_for_brokers(
            s.kafka_config(), stop=self.stop, timeout=s.trace_startup_timeout_seconds
        ):
            return
        self.stages = self._stages(layout(s))
        watched = [stage.name for stage in self.stages if stage.watched]
        self.health.watch(watched)
        for name in watched:
            ready = functools.partial(self.health.stage_ready, name)
            self.metrics.stage_ready.labels(name).set_function(ready)
        self.health.watch_kafka()
        self.health.started()
        for stage in self.stages:
            self._supervisor.spawn(stage)

    def _stages(self, topics: Topics) -> list[Stage]:
        s = self.settings
        alerter = Alerter(
            self.metrics,
            self.runner,
            self.http,
            s.alert_webhook_url,
            min_interval=s.alert_min_interval_seconds,
        )
        follower = SignalFollower(
            topic=s.trace_signal_settings_topic or None,
            follower_factory=lambda topic: Follower(s.kafka_config(), topic),
            table=self.signals,
            metrics=self.metrics,
            health=self.health,
            timeout=s.trace_kafka_timeout_seconds,
        )
        deliverers = [self._deliverer(topics, a, alerter) for a in self.adapters.values()]
        return [
            KafkaWatch(lambda: Ping(s.kafka_config()), self.health),
            self._scheduler(topics),
            follower,
            self._backlog(topics, deliverers),
            *(AfterLoaded(d, follower.loaded, self.health, s) for d in deliverers),
        ]

    def _scheduler(self, topics: Topics) -> Scheduler:
        s = self.settings
        config = s.consumer_config(s.trace_group_id, s.trace_input_offset_reset)
        self._decoder = input_decoder(s)
        producer = self._producer(f"{s.trace_group_id}.schedule.{s.trace_instance_id}")
        return Scheduler(
            consumer_factory=lambda sch: Consumer(config, on_assign=sch.on_assign),
            producer=producer,
            topics=topics,
            enabled_adapters=frozenset(s.enabled_adapters),
            delay=s.delay,
            clock=self.clock,
            metrics=self.metrics,
            health=self.health,
            decode=self._decoder,
            limits=Limits(s.max_clock_skew, s.trace_earliest_close),
        )

    def _deliverer(
        self, topics: Topics, adapter: Adapter | BatchAdapter, alerter: Alerter
    ) -> Deliverer:
        s = self.settings
        group = self._group(adapter.name)
        # Internal topics always start at the beginning: nothing scheduled may be skipped.
        # A short fetch wait: a partition resumed when its head falls due joins the next
        # fetch request, which otherwise long-polls up to 500 ms (measured on loopback:
        # median/max lateness 144/427 ms with the default, 48/104 ms with 100 ms).
        config = {**s.consumer_config(group, "earliest"), "fetch.wait.max.ms": 100}
        policy = RetryPolicy(
            s.retry_tiers, topics.retries, s.trace_retry_max_attempts, s.trace_retry_jitter
        )
        limit = s.trace_rate_limits.get(adapter.name)  # never a batch adapter's: `build`
        return Deliverer(
            adapter=adapter,
            consumer_factory=lambda d: Consumer(
                config, on_assign=d.on_assign, on_revoke=d.on_revoke
            ),
            producer=self._producer(f"{group}.{s.trace_instance_id}"),
            topics=topics,
            policy=policy,
            runner=self.runner,
            alerter=alerter,
            metrics=self.metrics,
            health=self.health,
            clock=self.clock,
            max_in_flight=s.trace_max_in_flight,
            max_buffered=s.trace_max_buffered,
            max_held_bytes=s.lookahead_bytes,
            # Later than this no valid delivery can be due: the scheduler rejects close
            # times beyond the clock skew, and a retry waits one tier and its jitter at most.
            max_ahead=s.delay + 2 * s.max_clock_skew + policy.longest_wait,
            breaker=Breaker(
                s.trace_breaker_threshold, timedelta(seconds=s.trace_breaker_cooldown_seconds)
            ),
            limit=None if limit is None else RateLimit(self.clock(), **limit.model_dump()),
            consent=self.signals.decide,
        )

    def _backlog(self, topics: Topics, deliverers: list[Deliverer]) -> BacklogProbe:
        s = self.settings
        return BacklogProbe(
            reader=Reader(s.kafka_config(), prefetch=PROBE_SAMPLE),
            groups={d.adapter.name: self._group(d.adapter.name) for d in deliverers},
            topics=topics,
            metrics=self.metrics,
            clock=self.clock,
            positions={d.adapter.name: d.read_positions for d in deliverers},
            interval=s.trace_backlog_refresh_seconds,
            bound=s.trace_kafka_timeout_seconds + 50,
            renew=lambda: Reader(s.kafka_config(), prefetch=PROBE_SAMPLE),
            input_group=s.trace_group_id,
        )

    def _producer(self, transactional_id: str) -> TransactionalProducer:
        s = self.settings
        return self.producer_factory(
            s.kafka_config(),
            transactional_id,
            timeout=s.trace_kafka_timeout_seconds,
            recovery=s.trace_kafka_recovery_seconds,
            stop=self.stop,
        )

    def _group(self, adapter: str) -> str:
        return f"{self.settings.trace_group_id}.deliver.{adapter}"

    def wait(self, timeout: float | None = None) -> None:
        self.stop.wait(timeout)

    def close(self, timeout: float = 30) -> None:
        """Stop every stage (they drain in-flight posts and commit), then release clients;
        waits `timeout` seconds in all for the stages."""
        self._supervisor.join(timeout)
        for adapter in getattr(self, "adapters", {}).values():
            self.runner.run(adapter.aclose(), timeout=5)
        self.runner.run(self.http.aclose(), timeout=5)
        self.runner.close()
        if isinstance(self._decoder, RegistryDecoder):
            self._decoder.close()

    @property
    def failed(self) -> BaseException | None:
        return self._supervisor.failed


class AfterLoaded:
    """A deliverer that starts once the consent table is loaded: no post before the
    table can say whether consent still holds."""

    watched = True

    def __init__(
        self, deliverer: Deliverer, loaded: threading.Event, health: Health, settings: Settings
    ) -> None:
        self._deliverer = deliverer
        self._loaded = loaded
        self._health = health
        self._shutdown_timeout = settings.trace_shutdown_timeout_seconds
        self.name = deliverer.stage

    def run(self, stop: threading.Event) -> None:
        while not self._loaded.wait(0.5):
            if stop.is_set():
                return
            self._health.beat(self.name)
        self._deliverer.run(stop, shutdown_timeout=self._shutdown_timeout)


def build(
    settings: Settings, registry: CollectorRegistry | None = None, clock: Clock = utc_now
) -> Service:
    return Service(settings, Metrics(registry or CollectorRegistry()), clock)
