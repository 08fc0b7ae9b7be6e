"""The real Deliverer, driven step by step with an in-memory consumer, a producer whose
transactions the test confirms or aborts, a manual clock, and a fake adapter on the real
AsyncRunner. No broker: each test names one promise of the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pytest
from prometheus_client import CollectorRegistry

from tests.support import trade_event
from trace_stream.adapters.base import TraceBatch, idempotency_key
from trace_stream.adapters.runner import AsyncRunner, Started
from trace_stream.codec import decode_dead_letter
from trace_stream.codec.wire import DUE, delivery_record
from trace_stream.core.messages import TP, Headers, Message, OutRecord
from trace_stream.core.outcomes import Delivered, Gone, Outcome, Permanent, Retriable
from trace_stream.core.records import DeadLetter, Origin, Trace, TraceDelivery
from trace_stream.core.topics import Topics
from trace_stream.kafka import TransactionAborted
from trace_stream.pipeline.consent import POST, Decision, Unknown, Withdrawn
from trace_stream.pipeline.redact import redact
from trace_stream.pipeline.routing import RetryPolicy
from trace_stream.stages.deliver import Deliverer
from trace_stream.state.breaker import Breaker
from trace_stream.state.limits import RateLimit
from trace_stream.state.lookahead import Timers
from trace_stream.telemetry.health import Health
from trace_stream.telemetry.metrics import Metrics

T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
A, B = ("delay", 0), ("delay", 1)
NAME = "fake"
R = TypeVar("R")


class Clock:
    """Wall time for due times, monotonic time for the loop's intervals: both manual."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class FakeConsumer:
    """Partition logs in memory, read from a position per partition that seek and
    rewind move; paused or unassigned partitions are not read."""

    def __init__(self) -> None:
        self.logs: dict[TP, list[Message]] = {A: [], B: []}
        self.position: dict[TP, int] = {A: 0, B: 0}
        self.assigned = {A, B}
        self.paused: set[TP] = set()
        self.committed: dict[TP, int] = {}
        self.rewinds = 0

    def add(
        self,
        tp: TP,
        trade_id: str,
        due: datetime,
        signal: str = "SIG-1",
        headers: Callable[[Headers], Headers] = lambda written: written,
    ) -> None:
        """A delivery record as the service writes it (`headers` may rewrite its headers)."""
        trace = redact(trade_event(trade_id, signal_id=signal, closed_at=due))
        origin = Origin(topic="in", partition=0, offset=0)
        delivery = TraceDelivery(trace=trace, adapters=(NAME,), due_at=due, origin=origin)
        r = delivery_record(tp[0], delivery)
        offset = len(self.logs[tp])
        self.logs[tp].append(Message(tp[0], tp[1], offset, r.key, r.value, headers(r.headers)))

    def subscribe(self, topics: list[str]) -> None:
        pass

    def consume(self, max_messages: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        for tp in sorted(self.assigned - self.paused):
            while self.position[tp] < len(self.logs[tp]) and len(out) < max_messages:
                out.append(self.logs[tp][self.position[tp]])
                self.position[tp] += 1
        return out

    def pause(self, tps: list[TP]) -> None:
        self.paused.update(tps)

    def resume(self, tps: list[TP]) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TP, offset: int) -> None:
        self.position[tp] = offset

    def rewind(self) -> None:
        self.rewinds += 1
        self.position = {tp: self.committed.get(tp, 0) for tp in self.position}

    def mark_committed(self, offsets: Mapping[TP, int]) -> None:
        self.committed.update(offsets)

    def group_metadata(self) -> Any:
        return None

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class Transaction:
    records: list[OutRecord]
    offsets: dict[TP, int]
    done: Future[None]


class FakeProducer:
    """Transactions wait for the test (`confirm`, `abort`), or with `auto` go through."""

    healthy = True

    def __init__(self, auto: bool = False) -> None:
        self.auto = auto
        self.transactions: list[Transaction] = []

    def start_commit(
        self, records: Sequence[OutRecord], offsets: Mapping[TP, int], group_metadata: Any
    ) -> Future[None]:
        done: Future[None] = Future()
        self.transactions.append(Transaction(list(records), dict(offsets), done))
        if self.auto:
            done.set_result(None)
        return done

    def confirm(self) -> None:
        self.transactions[-1].done.set_result(None)

    def abort(self) -> None:
        self.transactions[-1].done.set_exception(TransactionAborted("test abort", "_TEST"))


class FakeAdapter:
    """Records (trade id, idempotency key) as each post starts; a trade with a gate
    waits until it is set; outcomes by trade id, Delivered otherwise."""

    name = NAME

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []
        self.gates: dict[str, threading.Event] = {}
        self.outcomes: dict[str, Outcome] = {}

    async def deliver(self, trace: Trace, key: str) -> Outcome:
        self.posts.append((trace.trade_id, key))
        gate = self.gates.get(trace.trade_id)
        while gate is not None and not gate.is_set():
            await asyncio.sleep(0.005)
        return self.outcomes.get(trace.trade_id, Delivered())

    async def aclose(self) -> None:
        pass


class FakeBatchAdapter:
    name = NAME
    batch_size = 2
    batch_max_age = timedelta(seconds=30)

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    def batch_key(self, trace: Trace) -> str:
        return "one file"

    async def deliver_batch(self, batch: TraceBatch) -> Outcome:
        self.batches.append(batch.offsets)
        return Delivered()

    async def aclose(self) -> None:
        pass


class FakeAlerter:
    def __init__(self) -> None:
        self.abandoned_letters: list[DeadLetter] = []
        self.paused_until: list[str] = []
        self.slowed_until: list[str] = []
        self.stopped_for: list[str] = []

    def slowed(self, adapter: str, until: str, detail: str) -> None:
        self.slowed_until.append(until)

    def stopped(self, adapter: str, detail: str) -> None:
        self.stopped_for.append(detail)

    def abandoned(self, letter: DeadLetter) -> None:
        self.abandoned_letters.append(letter)

    def paused(self, adapter: str, until: str) -> None:
        self.paused_until.append(until)


class CountingRunner(AsyncRunner):
    """Counts the posts started, as the loop starts them (the adapter sees them later)."""

    started = 0

    def start_all(self, coros: Sequence[Coroutine[Any, Any, None]]) -> list[Started]:
        self.started += len(coros)
        return super().start_all(coros)


@pytest.fixture
def runner() -> Iterator[CountingRunner]:
    r = CountingRunner()
    yield r
    r.close()


class Rig:
    def __init__(self, runner: CountingRunner, adapter: Any = None, **options: Any) -> None:
        self.clock, self.consumer, self.alerter = Clock(), FakeConsumer(), FakeAlerter()
        self.producer = FakeProducer(auto=options.pop("auto", False))
        self.adapter = adapter or FakeAdapter()
        self.runner = runner
        self.metrics = Metrics(CollectorRegistry())
        self.health = Health([f"deliver.{NAME}"])
        self.deliverer = Deliverer(
            adapter=self.adapter,
            consumer_factory=lambda _: cast(Any, self.consumer),
            producer=cast(Any, self.producer),
            topics=Topics(input="in", delay="delay", retries=("retry.3s",), dead_letter="dlq"),
            policy=RetryPolicy((timedelta(seconds=3),), ("retry.3s",), 3),
            runner=runner,
            alerter=cast(Any, self.alerter),
            metrics=self.metrics,
            health=self.health,
            clock=self.clock,
            monotonic=self.clock.monotonic,
            **options,
        )

    def step(self, times: int = 1) -> None:
        for _ in range(times):
            self.deliverer.step()

    def until(self, condition: Callable[[], object], what: str, timeout: float = 10) -> None:
        """Step until `condition()`: posts finish on the runner's thread meanwhile."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.deliverer.step()
            time.sleep(0.001)

    def pushed(self) -> float:
        return float(self.metrics.pushed.labels(NAME)._value.get())

    def posted(self) -> list[str]:
        return [trade_id for trade_id, _ in self.adapter.posts]

    def commit_now(self) -> Transaction:
        """Let the commit interval pass; the next step starts a transaction."""
        n = len(self.producer.transactions)
        self.clock.mono += 0.25  # past the commit interval (0.1 s)
        self.step()
        assert len(self.producer.transactions) == n + 1, "no transaction started"
        return self.producer.transactions[-1]


def test_each_delivery_is_posted_at_its_own_due_time_whatever_the_arrival_order(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner)
    for tp, trade_id, due_in in [(A, "T-30", 30), (A, "T-10", 10), (B, "T-20", 20), (A, "T-0", 0)]:
        rig.consumer.add(tp, trade_id, T0 + timedelta(seconds=due_in))
    rig.until(lambda: rig.pushed() == 1, "the delivery due now")
    assert rig.posted() == ["T-0"]
    for n, (seconds, trade_id) in enumerate([(10, "T-10"), (20, "T-20"), (30, "T-30")], 2):
        rig.clock.now = T0 + timedelta(seconds=seconds, microseconds=-1)
        rig.step(3)
        assert runner.started == n - 1, f"posted before its due time: {rig.posted()}"
        rig.clock.now += timedelta(microseconds=1)
        rig.until(lambda: rig.pushed() == n, f"{trade_id} once due")  # noqa: B023
        assert rig.posted()[-1] == trade_id
    rig.commit_now()
    rig.producer.confirm()
    rig.step()
    assert rig.consumer.committed == {A: 3, B: 1}


def test_a_record_waits_for_its_value_due_time_whatever_its_header_says(
    runner: CountingRunner,
) -> None:
    """The look-ahead holds a record by its `trace.due` header and decodes it once due:
    a value due later than its header is dead-lettered, never posted; a record without
    the headers (written before them) is held by its value's due time."""
    rig = Rig(runner)
    epoch = [(DUE, b"0")]  # due in 1970, says the header
    rig.consumer.add(A, "T-lied", T0 + timedelta(seconds=60), headers=lambda h: h[:-1] + epoch)
    rig.consumer.add(B, "T-old", T0 + timedelta(seconds=5), headers=lambda h: [])
    rig.clock.mono += 0.25  # past the commit interval
    rig.until(lambda: rig.producer.transactions, "the dead letter's transaction")
    (record,) = rig.producer.transactions[0].records
    letter = decode_dead_letter(record.value)
    assert (letter.reason, letter.detail) == ("undecodable", f"due later than its {DUE} header")
    rig.clock.now = T0 + timedelta(seconds=5, microseconds=-1)
    rig.step(3)
    assert runner.started == 0, f"posted before its due time: {rig.posted()}"
    rig.clock.now += timedelta(microseconds=1)
    rig.until(lambda: rig.pushed() == 1, "the record without headers, once due")
    assert rig.posted() == ["T-old"]


def test_a_full_buffer_pauses_the_partition_and_resumes_it_at_a_tenth_free(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner, max_buffered=20, max_in_flight=1)
    for i in range(25):
        rig.consumer.add(A, f"T-{i:02d}", T0 + timedelta(seconds=60))
    rig.step(2)  # the budget's 20 records, then one more read: A pauses
    assert rig.consumer.paused == {A}
    assert rig.consumer.position[A] == 20, "the record read past the budget is read again"
    rig.clock.advance(60)
    rig.until(lambda: rig.pushed() == 1, "the first post")
    assert rig.consumer.paused == {A}, "resumed at the first free slot"
    rig.until(lambda: rig.pushed() == 2, "the second post")
    assert rig.consumer.paused == set(), "not resumed with a tenth of the budget free"
    rig.until(lambda: rig.pushed() == 25, "every post")
    assert sorted(rig.posted()) == [f"T-{i:02d}" for i in range(25)]


def test_the_memory_budget_pauses_reading_whatever_the_count_and_reports_its_bytes(
    runner: CountingRunner,
) -> None:
    """Ten records' worth of bytes: the eleventh read pauses the partition, though the
    count cap is far away, and is read again; the gauges show the bytes held against
    the budget."""
    probe = FakeConsumer()
    probe.add(A, "T-00", T0)
    per_record = Timers().cost(probe.logs[A][0].value or b"")  # a webhook holds by timer
    rig = Rig(runner, max_in_flight=1, max_held_bytes=10 * per_record)
    for i in range(15):
        rig.consumer.add(A, f"T-{i:02d}", T0 + timedelta(seconds=60 - i))  # due in reverse
    rig.step(2)
    assert rig.consumer.paused == {A}
    assert rig.consumer.position[A] == 10
    rig.clock.mono += 1  # past the report interval
    rig.step()
    gauge = rig.metrics.buffered_bytes.labels(NAME)._value.get()
    assert gauge == 10 * per_record
    assert rig.metrics.buffer_budget_bytes.labels(NAME)._value.get() == 10 * per_record
    rig.clock.advance(60)
    rig.until(lambda: rig.pushed() == 15, "every post")
    assert sorted(rig.posted()) == [f"T-{i:02d}" for i in range(15)]
    assert rig.consumer.paused == set()


def test_posts_go_on_while_a_transaction_waits_and_stop_once_it_stalls(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner)
    rig.consumer.add(A, "T-0", T0)
    rig.consumer.add(A, "T-1", T0 + timedelta(seconds=1))
    rig.consumer.add(A, "T-2", T0 + timedelta(seconds=2))
    rig.until(lambda: rig.pushed() == 1, "the first post")
    rig.commit_now()
    started = rig.clock.mono
    rig.clock.now, rig.clock.mono = T0 + timedelta(seconds=1), started + 0.99
    rig.until(lambda: rig.pushed() == 2, "a post while the transaction waits")
    rig.clock.now, rig.clock.mono = T0 + timedelta(seconds=2), started + 1.01
    rig.step(5)
    assert runner.started == 2, "a post started while the transaction stalled"
    assert rig.consumer.committed == {}
    rig.producer.confirm()
    rig.until(lambda: rig.pushed() == 3, "the post held back, once the transaction is through")
    assert rig.consumer.committed == {A: 1}


def test_an_aborted_transaction_rewinds_and_posts_again_with_the_same_keys(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner)
    rig.consumer.add(A, "T-0", T0)
    rig.consumer.add(A, "T-1", T0)
    rig.until(lambda: rig.pushed() == 2, "the first posts")
    assert rig.commit_now().offsets == {A: 2}
    rig.consumer.add(A, "T-2", T0)  # posted while the transaction is under way
    rig.until(lambda: rig.pushed() == 3, "a post while the transaction waits")
    rig.producer.abort()
    rig.until(lambda: rig.pushed() == 6, "every post made again")
    assert rig.consumer.rewinds == 1
    assert rig.consumer.committed == {}, "an aborted transaction counted as committed"
    keys = Counter(rig.adapter.posts)
    assert keys == {(t, idempotency_key(t, NAME)): 2 for t in ("T-0", "T-1", "T-2")}
    assert rig.commit_now().offsets == {A: 3}
    rig.producer.confirm()
    rig.step()
    assert rig.consumer.committed == {A: 3}


def test_a_dead_letter_is_counted_and_alerted_only_once_its_transaction_is_through(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner)
    rig.adapter.outcomes["T-bad"] = Permanent("auth", "HTTP 401")
    rig.consumer.add(A, "T-bad", T0)
    dead = rig.metrics.dead_lettered.labels(NAME, "permanent_failure")._value.get
    failed = rig.metrics.failed.labels(NAME, "auth")._value.get
    rig.until(lambda: failed() == 1, "the failed post")
    (record,) = rig.commit_now().records
    assert record.topic == "dlq" and decode_dead_letter(record.value).reason == "permanent_failure"
    rig.producer.abort()
    rig.until(lambda: failed() == 2, "the post made again after the abort")
    assert (dead(), rig.alerter.abandoned_letters) == (0, []), "alerted for an aborted letter"
    rig.commit_now()
    rig.step(3)
    assert (dead(), rig.alerter.abandoned_letters, rig.consumer.committed) == (0, [], {})
    rig.producer.confirm()
    rig.step()
    assert dead() == 1
    assert [letter.reason for letter in rig.alerter.abandoned_letters] == ["permanent_failure"]
    assert rig.consumer.committed == {A: 1}


def test_a_revoke_mid_flight_drains_and_commits_the_partition_then_forgets_it(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner, auto=True)
    rig.consumer.add(A, "T-A0", T0)
    rig.consumer.add(A, "T-A1", T0 + timedelta(seconds=60))  # held, not due
    rig.consumer.add(B, "T-B0", T0)
    gate_a, gate_b = threading.Event(), threading.Event()
    rig.adapter.gates.update({"T-A0": gate_a, "T-B0": gate_b})
    rig.until(lambda: len(rig.adapter.posts) == 2, "both posts in flight")
    threading.Timer(0.3, gate_a.set).start()  # A's post ends while the revoke waits
    rig.consumer.assigned.discard(A)
    began = time.monotonic()
    rig.deliverer.on_revoke([A])
    assert time.monotonic() - began < 5, "the revoke waited for another partition's post"
    assert [t.offsets for t in rig.producer.transactions] == [{A: 1}]
    assert rig.consumer.committed == {A: 1}
    gate_b.set()
    rig.clock.advance(60)  # T-A1 is due, but no longer this deliverer's
    rig.until(lambda: rig.pushed() == 2, "B's post")
    rig.clock.mono += 0.25  # past the commit interval (0.1 s)
    rig.until(lambda: rig.consumer.committed.get(B) == 1, "B's post committed")
    rig.step(3)
    assert sorted(rig.posted()) == ["T-A0", "T-B0"]
    assert runner.started == 2
    assert [t.offsets for t in rig.producer.transactions] == [{A: 1}, {B: 1}]


def test_consent_is_checked_when_a_delivery_falls_due(runner: CountingRunner) -> None:
    decisions: dict[str, Decision] = {}
    rig = Rig(runner, consent=lambda signal, _: decisions.get(signal, POST))
    for trade_id, signal in [("T-1", "SIG-1"), ("T-2", "SIG-2"), ("T-3", "SIG-3")]:
        rig.consumer.add(A, trade_id, T0 + timedelta(seconds=10), signal)
    rig.step(2)  # read while consent holds for all three
    decisions["SIG-2"] = Withdrawn("consent_withdrawn")
    decisions["SIG-3"] = Unknown("the latest record cannot be decoded")
    rig.clock.advance(10)
    rig.until(lambda: rig.pushed() == 1, "the post consent allows")
    withdrawn = rig.metrics.withdrawn.labels(NAME, "consent_withdrawn")._value.get
    transaction = rig.commit_now()
    assert transaction.offsets == {A: 3}
    (letter,) = [decode_dead_letter(r.value) for r in transaction.records]
    assert letter.reason == "signal_settings_unreadable"
    assert letter.delivery is not None and letter.delivery.trace.trade_id == "T-3"
    assert withdrawn() == 0
    rig.producer.confirm()
    rig.step()
    assert withdrawn() == 1
    assert rig.posted() == ["T-1"] and runner.started == 1


def test_an_open_breaker_holds_due_deliveries_until_its_cooldown_has_passed(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner, breaker=Breaker(2, timedelta(seconds=60)))
    for trade_id in ("T-bad1", "T-bad2"):
        rig.adapter.outcomes[trade_id] = Permanent("auth", "HTTP 401")
        rig.consumer.add(A, trade_id, T0)
    rig.consumer.add(A, "T-ok", T0 + timedelta(seconds=1))
    rig.until(lambda: rig.alerter.paused_until, "the breaker to open")
    assert rig.alerter.paused_until == [(T0 + timedelta(seconds=60)).isoformat()]
    paused = rig.metrics.adapter_paused.labels(NAME)._value.get
    assert paused() == 1
    rig.clock.now = T0 + timedelta(seconds=59.9)
    rig.step(5)
    assert runner.started == 2, "posted while the breaker is open"
    rig.clock.now = T0 + timedelta(seconds=60)
    rig.until(lambda: rig.pushed() == 1, "the post once the breaker closes")
    assert rig.posted()[-1] == "T-ok" and paused() == 0


def test_a_batch_adapters_next_batch_waits_until_the_last_one_is_committed(
    runner: CountingRunner,
) -> None:
    adapter = FakeBatchAdapter()
    rig = Rig(runner, adapter=adapter)
    for i in range(4):
        rig.consumer.add(A, f"T-{i}", T0)
    rig.until(lambda: rig.pushed() == 2, "the first batch")
    rig.until(lambda: bool(rig.producer.transactions), "its commit, without the interval")
    assert rig.producer.transactions[-1].offsets == {A: 2}
    rig.step(5)
    assert runner.started == 1, "a batch started before the last one was committed"
    rig.producer.confirm()
    rig.until(lambda: rig.pushed() == 4, "the second batch")
    assert adapter.batches == [(0, 1), (2, 3)]


def test_a_retry_after_holds_every_delivery_of_the_adapter_until_then(
    runner: CountingRunner,
) -> None:
    rig = Rig(runner)
    rig.adapter.outcomes["T-slow"] = Retriable("rate_limited", "HTTP 429", timedelta(seconds=2))
    rig.consumer.add(A, "T-slow", T0)
    rig.consumer.add(A, "T-a", T0 + timedelta(seconds=1))
    rig.consumer.add(B, "T-b", T0 + timedelta(seconds=1))
    failed = rig.metrics.failed.labels(NAME, "rate_limited")._value.get
    rig.until(lambda: failed() == 1, "the 429")
    assert rig.alerter.slowed_until == [(T0 + timedelta(seconds=2)).isoformat()]
    paused = rig.metrics.tracker_paused.labels(NAME)._value.get
    assert paused() == 1
    rig.clock.now = T0 + timedelta(seconds=1.999)  # the others are due, the tracker said wait
    rig.step(5)
    assert runner.started == 1, f"posted during the tracker's pause: {rig.posted()}"
    assert 0 < rig.deliverer._poll_timeout() <= 0.001 + 1e-9, "wakes when the pause ends"
    rig.clock.now = T0 + timedelta(seconds=2)
    rig.until(lambda: rig.pushed() == 2, "both posts once the pause is over")
    assert sorted(rig.posted()) == ["T-a", "T-b", "T-slow"]
    rig.clock.mono += 1  # the next report, and a commit
    rig.step()
    assert paused() == 0
    (retry,) = rig.producer.transactions[-1].records
    assert retry.topic == "retry.3s", "the one that got the 429 waits on its tier as before"


def test_the_rate_limit_starts_no_more_posts_than_it_allows(runner: CountingRunner) -> None:
    rig = Rig(runner, limit=RateLimit(T0, per_second=2, burst=2), auto=True)
    for i in range(5):
        rig.consumer.add(A, f"T-{i}", T0)
    rig.until(lambda: rig.pushed() == 2, "the burst")
    rig.clock.mono += 1  # the next report
    rig.step(5)
    assert runner.started == 2, "posted beyond the burst"
    waiting = rig.metrics.waiting_for_limit.labels(NAME, "rate")._value.get
    assert waiting() == 1
    assert 0.49 < rig.deliverer._poll_timeout() <= 0.5, "sleeps until the next token"
    rig.clock.advance(0.499)
    rig.step(3)
    assert runner.started == 2, "posted before its token"
    rig.clock.advance(0.002)
    rig.until(lambda: rig.pushed() == 3, "one more, half a second later")
    rig.clock.advance(1)
    rig.until(lambda: rig.pushed() == 5, "the rest")
    rig.clock.mono += 1  # the next report, and a commit
    rig.until(lambda: rig.consumer.committed == {A: 5}, "all committed")
    assert waiting() == 0


def test_gone_stops_the_adapter_and_keeps_its_deliveries_in_kafka(runner: CountingRunner) -> None:
    rig = Rig(runner, max_in_flight=1)
    rig.adapter.outcomes["T-1"] = Gone("HTTP 410")
    rig.consumer.add(A, "T-0", T0)
    rig.consumer.add(A, "T-1", T0)
    rig.consumer.add(A, "T-2", T0)
    rig.consumer.add(B, "T-3", T0 + timedelta(seconds=5))
    gone = rig.metrics.failed.labels(NAME, "gone")._value.get
    rig.until(lambda: gone() == 1, "the 410")
    rig.clock.advance(60)
    rig.step(10)
    assert rig.posted() == ["T-0", "T-1"], "posted after the tracker said it is gone"
    assert rig.alerter.stopped_for == ["HTTP 410"]
    assert rig.metrics.adapter_stopped.labels(NAME)._value.get() == 1
    rig.health.started()
    rig.deliverer.on_assign([A, B])
    assert rig.health.ready() == (
        False,
        "adapter stopped: fake (the tracker answered HTTP 410 Gone)",
    )
    rig.producer.confirm()
    rig.clock.advance(60)
    rig.step(3)
    assert rig.consumer.committed == {A: 1}, "committed past a delivery that was not posted"
    assert [r for t in rig.producer.transactions for r in t.records] == [], "a record written"
    assert rig.deliverer._poll_timeout() == 0.5, "nothing to wake for"
