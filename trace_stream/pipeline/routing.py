"""Pure: (delivery, adapter, outcome) -> where the delivery goes next.

    Delivered                          -> Done
    Retriable, retries left            -> Retry on the tier topic for this attempt
    Retriable, no retries left         -> Abandon (dead letter, reason retries_exhausted)
    Permanent                          -> Abandon (dead letter, reason permanent_failure)
    Gone                               -> Stop (the delivery stays unfinished, in Kafka;
                                          the adapter stops sending)

The first post is attempt 1; retry N (1-based) waits on tier N, and retries past
the last tier reuse it. A Retry-After moves the delivery to the first tier at least
that long, capped at the last tier.

Jitter, never early: a retry is due at now + tier + tier * jitter * rand(), where
`rand()` is in [0, 1) (an injectable random source, `random.random` by default), so
deliveries that failed in the same second come back spread over `jitter` of their
tier and never before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from trace_stream.core.dead_letters import dead_letter
from trace_stream.core.outcomes import Delivered, Gone, Outcome, Permanent
from trace_stream.core.reasons import Reason
from trace_stream.core.records import AttemptError, DeadLetter, TraceDelivery


@dataclass(frozen=True)
class RetryPolicy:
    tiers: tuple[timedelta, ...]
    topics: tuple[str, ...]
    max_retries: int
    jitter: float = 0.0
    """A share of each tier, 0 to 1, added at random to a retry's wait."""

    @property
    def longest_wait(self) -> timedelta:
        """No retry waits longer than this: the last tier and all its jitter."""
        return max(self.tiers) * (1 + self.jitter)

    def wait(self, tier: int, rand: Callable[[], float]) -> timedelta:
        """The wait before a retry on `tier`: the tier, plus up to `jitter` of it."""
        base = self.tiers[tier]
        return base + base * (self.jitter * min(max(rand(), 0.0), 1.0))

    def tier(self, retry_number: int, retry_after: timedelta | None) -> int:
        """Index of the tier for the given 1-based retry number."""
        index = min(retry_number, len(self.tiers)) - 1
        if retry_after is not None:
            wanted = next(
                (i for i, t in enumerate(self.tiers) if t >= retry_after), len(self.tiers) - 1
            )
            index = max(index, wanted)
        return index


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Retry:
    topic: str
    delivery: TraceDelivery


@dataclass(frozen=True)
class Abandon:
    letter: DeadLetter


@dataclass(frozen=True)
class Stop:
    """The endpoint is gone: keep the delivery (unfinished) and stop the adapter."""

    detail: str


Route = Done | Retry | Abandon | Stop


def route(
    delivery: TraceDelivery,
    adapter: str,
    outcome: Outcome,
    *,
    policy: RetryPolicy,
    now: datetime,
    rand: Callable[[], float] = random.random,
) -> Route:
    if isinstance(outcome, Delivered):
        return Done()
    if isinstance(outcome, Gone):
        return Stop(outcome.detail)
    attempts = delivery.attempt + 1
    after = delivery.model_copy(
        update={
            "adapters": (adapter,),
            "attempt": attempts,
            "first_attempt_at": delivery.first_attempt_at or now,
            "errors": (
                *delivery.errors,
                AttemptError(at=now, adapter=adapter, reason=outcome.reason, detail=outcome.detail),
            ),
        }
    )
    retries_done = attempts - 1
    if isinstance(outcome, Permanent) or retries_done >= policy.max_retries:
        reason: Reason = (
            "permanent_failure" if isinstance(outcome, Permanent) else "retries_exhausted"
        )
        return Abandon(
            dead_letter(
                reason,
                f"{outcome.reason}: {outcome.detail} after {attempts} attempt(s)",
                origin=delivery.origin,
                at=now,
                adapter=adapter,
                delivery=after,
            )
        )
    tier = policy.tier(retries_done + 1, outcome.retry_after)
    due = now + policy.wait(tier, rand)
    return Retry(policy.topics[tier], after.model_copy(update={"due_at": due}))
