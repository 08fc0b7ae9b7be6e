"""Why a record was dead-lettered: one closed set.

The record (`DeadLetter.reason`), the metric label
(`trust_trace_dead_lettered_total{reason}`), the `dlq` help and the reference
table in the docs all take their reasons from here; a test holds the docs to it.
A reason names what went wrong, never a value of the trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Reason = Literal[
    "undecodable",
    "invalid_event",
    "unprocessable",
    "due_out_of_range",
    "signal_settings_unreadable",
    "permanent_failure",
    "retries_exhausted",
]


@dataclass(frozen=True)
class About:
    """What a reason means, where it comes from, and what an operator does about it."""

    stage: str
    """The stage that writes it."""
    meaning: str
    redrivable: bool
    action: str


REASONS: dict[Reason, About] = {
    "undecodable": About(
        "schedule, deliver",
        "a trade.closed record (or a delivery record) that is not the expected Avro, "
        "or a delivery record due later than its trace.due header says",
        False,
        "fix the producer and publish the event again",
    ),
    "invalid_event": About(
        "schedule",
        "an opted-in event that breaks a bound (the detail names each field and rule)",
        False,
        "fix the producer and publish the event again",
    ),
    "unprocessable": About(
        "schedule",
        "an event the rules let through but a later step could not handle (a bug here)",
        False,
        "report it; the detail names the step and the exception type",
    ),
    "due_out_of_range": About(
        "deliver",
        "a delivery record due later than any valid event can be",
        False,
        "find who wrote to the delay or retry topic; replay the trade from trade.closed",
    ),
    "signal_settings_unreadable": About(
        "deliver",
        "the signal's latest settings record could not be read, so consent is unknown",
        True,
        "have the platform write a valid settings record, then `dlq redrive`",
    ),
    "permanent_failure": About(
        "deliver",
        "the tracker refused the post for good (4xx, auth, a rejected body)",
        True,
        "fix the credentials or the body, then `dlq redrive`",
    ),
    "retries_exhausted": About(
        "deliver",
        "the post failed on every tier of the retry ladder",
        True,
        "once the tracker is back, `dlq redrive`",
    ),
}

assert set(REASONS) == set(get_args(Reason)), "every reason is described"
