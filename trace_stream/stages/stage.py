"""The contract every stage keeps; the service runs a list of them, one thread each."""

from __future__ import annotations

import threading
from typing import Protocol


class Stage(Protocol):
    """A loop that owns its Kafka clients and runs on a thread of its own.

    - `name` names its thread and, if `watched`, its entry on /healthz and /readyz.
    - `watched`: the service is live only while the stage's loop comes round, and ready
      only once it has joined and reaches Kafka; it reports both through the `Health`
      it was built with (`beat`, `joined`). A stage that is not watched (the backlog
      probe, the signal follower without a topic) never holds readiness back.
    - `run(stop)` loops until `stop` is set, finishes or hands back its work, closes its
      clients and returns. It raises only for a failing dependency (a `TraceStreamError`
      saying what to check), never for one bad record; the service then stops.
    """

    @property
    def name(self) -> str: ...

    @property
    def watched(self) -> bool: ...

    def run(self, stop: threading.Event) -> None: ...
