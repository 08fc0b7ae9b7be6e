"""What became of one post: the outcomes every adapter returns.

`reason` comes from the fixed FailReason set (safe as a metric label); `detail` is
built from status codes and exception types only (never a URL with a token, never
a secret, never a value of the trade).
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


Outcome = Delivered | Retriable | Permanent
