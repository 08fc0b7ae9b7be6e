"""What became of one post: the outcomes every adapter returns.

`reason` comes from the fixed FailReason set (safe as a metric label); `detail` is
built from status codes and exception types only (never a URL with a token, never
a secret, never a value of the trade).

    Delivered   the tracker accepted it
    Retriable   try again later (a `retry_after` the tracker asked for also pauses the
                whole adapter until then: see `stages/deliver/finish.py`)
    Permanent   this post will never be accepted: dead-letter it
    Gone        the endpoint is gone for good (HTTP 410): not this trade's fault, so
                the trade is kept (never dead-lettered) and the adapter stops sending
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

FailReason = Literal[
    "timeout",
    "connection",
    "rate_limited",
    "server_error",
    "malformed_response",
    "auth",
    "rejected",
    "storage",
    "unexpected",
    "gone",
]


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retriable:
    reason: FailReason
    detail: str
    retry_after: timedelta | None = None


@dataclass(frozen=True)
class Permanent:
    reason: FailReason
    detail: str


@dataclass(frozen=True)
class Gone:
    detail: str
    reason: FailReason = "gone"


Outcome = Delivered | Retriable | Permanent | Gone
