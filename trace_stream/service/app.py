"""Composition: build the stages from settings and run them until stopped.

Scheduler  (group <id>)                : trade.closed -> delay topic | dead letter
Signals    (no group, every partition) : signal settings topic -> the consent table
Deliverer  (group <id>.deliver.<name>) : delay + retry topics -> adapter -> ...
one per enabled adapter, each on its own thread, posts on one asyncio loop. The
deliverers start once the consent table is loaded.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from trace_stream import adapters
from trace_stream.adapters import transport
from trace_stream.adapters.base import Adapter, AdapterContext, BatchAdapter
from trace_stream.adapters.runner import AsyncRunner
from trace_stream.codec.registry import Decoder, RegistryDecoder, input_decoder
from trace_stream.core.errors import TraceStreamError
from trace_stream.core.topics import Topics, layout
from trace_stream.kafka import Consumer, Follower, Reader, TransactionalProducer, wait_for_brokers
from trace_stream.pipeline.consent import SignalTable
from trace_stream.pipeline.ingest import Limits
from trace_stream.pipeline.routing import RetryPolicy
from trace_stream.settings import Settings
from trace_stream.stages.backlog import PROBE_SAMPLE, BacklogProbe
from trace_stream.stages.deliver import Deliverer
from trace_stream.stages.schedule import Scheduler
from trace_stream.stages.signals import STAGE as SIGNALS_STAGE
from trace_stream.stages.signals import SignalFollower
from trace_stream.state.breaker import Breaker
from trace_stream.telemetry.alerts import Alerter
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Service:
    settings: Settings
    metrics: Metrics
    clock: Clock = utc_now
    producer_factory: Callable[..., TransactionalProducer] = TransactionalProducer
    """Called as (librdkafka config, transactional id, timeout=, recovery=, stop=)."""
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)
    _decoder: Decoder | None = None

    def __post_init__(self) -> None:
        follows = [SIGNALS_STAGE] if self.settings.trace_signal_settings_topic else []
        stages = [
            "schedule",
            *follows,
            *(f"deliver.{name}" for name in self.settings.enabled_adapters),
        ]
        self.health = Health(stages)
        self.signals = SignalTable()

    def start(self) -> None:
        """Wait for Kafka (until `stop`, or a KafkaError after the start-up timeout), build
        every stage, then run each on its own thread."""
        s = self.settings
        topics = layout(s)
        self.runner = AsyncRunner()
        self.http = transport.http_client()
        built = adapters.build(
            s.enabled_adapters, lambda name: AdapterContext(name, self.http, self.clock)
        )
        self.adapters = built
        if not wait_for_brokers(
            s.kafka_config(), stop=self.stop, timeout=s.trace_startup_timeout_seconds
        ):
            return
        alerter = Alerter(
            self.metrics,
            self.runner,
            self.http,
            s.alert_webhook_url,
            min_interval=s.alert_min_interval_seconds,
        )
        scheduler = self._scheduler(topics)
        deliverers = {
            name: self._deliverer(topics, adapter, alerter) for name, adapter in built.items()
        }
        probe = BacklogProbe(
            reader=Reader(s.kafka_config(), prefetch=PROBE_SAMPLE),
            groups={name: self._group(name) for name in built},
            topics=topics,
            metrics=self.metrics,
            clock=self.clock,
            positions={name: d.read_positions for name, d in deliverers.items()},
        )
        follower = SignalFollower(
            topic=s.trace_signal_settings_topic or None,
            follower_factory=lambda topic: Follower(s.kafka_config(), topic),
            table=self.signals,
            metrics=self.metrics,
            health=self.health,
            timeout=s.trace_kafka_timeout_seconds,
        )
        self.health.started()
        self._spawn("scheduler", scheduler.run)
        self._spawn("signals", follower.run)
        refresh = functools.partial(
            probe.run,
            interval=s.trace_backlog_refresh_seconds,
            bound=s.trace_kafka_timeout_seconds + 50,
            renew=lambda: Reader(s.kafka_config(), prefetch=PROBE_SAMPLE),
        )
        self._spawn("backlog", refresh)
        for name, deliverer in deliverers.items():
            run = functools.partial(
                self._deliver, deliverer, follower.loaded, s.trace_shutdown_timeout_seconds
            )
            self._spawn(f"deliver-{name}", run)

    def _deliver(
        self, deliverer: Deliverer, loaded: threading.Event, timeout: float, stop: threading.Event
    ) -> None:
        """Run a deliverer once the consent table is loaded: no post before the table
        can say whether consent still holds."""
        while not loaded.wait(0.5):
            if stop.is_set():
                return
            self.health.beat(deliverer.stage)
        deliverer.run(stop, shutdown_timeout=timeout)

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
        return Deliverer(
            adapter=adapter,
            consumer_factory=lambda d: Consumer(
                config, on_assign=d.on_assign, on_revoke=d.on_revoke
            ),
            producer=self._producer(f"{group}.{s.trace_instance_id}"),
            topics=topics,
            policy=RetryPolicy(s.retry_tiers, topics.retries, s.trace_retry_max_attempts),
            runner=self.runner,
            alerter=alerter,
            metrics=self.metrics,
            health=self.health,
            clock=self.clock,
            max_in_flight=s.trace_max_in_flight,
            max_buffered=s.trace_max_buffered,
            # Later than this no valid delivery can be due: the scheduler rejects close
            # times beyond the clock skew, and retries wait one tier at most.
            max_ahead=s.delay + 2 * s.max_clock_skew + max(s.retry_tiers),
            breaker=Breaker(
                s.trace_breaker_threshold, timedelta(seconds=s.trace_breaker_cooldown_seconds)
            ),
            consent=self.signals.decide,
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

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        def guarded() -> None:
            try:
                target(self.stop)
            except TraceStreamError as exc:  # a dependency failed: its message says what
                log.error("stage stopped: %s", exc, extra={"stage": name})
                self._errors.append(exc)
                self.stop.set()
            except BaseException as exc:
                log.exception("stage crashed", extra={"stage": name})
                self._errors.append(exc)
                self.stop.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout: float | None = None) -> None:
        self.stop.wait(timeout)

    def close(self, timeout: float = 30) -> None:
        """Stop every stage (they drain in-flight posts and commit), then release clients;
        waits `timeout` seconds in all for the stages."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for adapter in getattr(self, "adapters", {}).values():
            self.runner.run(adapter.aclose(), timeout=5)
        self.runner.run(self.http.aclose(), timeout=5)
        self.runner.close()
        if isinstance(self._decoder, RegistryDecoder):
            self._decoder.close()

    @property
    def failed(self) -> BaseException | None:
        return self._errors[0] if self._errors else None


def build(
    settings: Settings, registry: CollectorRegistry | None = None, clock: Clock = utc_now
) -> Service:
    return Service(settings, Metrics(registry or CollectorRegistry()), clock)
