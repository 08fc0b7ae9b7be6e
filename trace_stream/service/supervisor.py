"""The stages' threads: start each, stop them all when one fails, join within a bound."""

from __future__ import annotations

import logging
import threading
import time

from trace_stream.core.errors import TraceStreamError
from trace_stream.stages.stage import Stage

log = logging.getLogger(__name__)


class Supervisor:
    """Runs each stage on a daemon thread. A stage that raises sets `stop` for all: a
    `TraceStreamError` (a dependency failed; its message says what) is logged in one
    line, anything else with its traceback. `failed` holds the first error."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def spawn(self, stage: Stage) -> None:
        def guarded() -> None:
            try:
                stage.run(self.stop)
            except TraceStreamError as exc:
                log.error("stage stopped: %s", exc, extra={"stage": stage.name})
                self._fail(exc)
            except BaseException as exc:
                log.exception("stage crashed", extra={"stage": stage.name})
                self._fail(exc)

        thread = threading.Thread(target=guarded, name=stage.name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self.stop.set()

    def join(self, timeout: float) -> None:
        """Set `stop` and wait up to `timeout` seconds in all for every thread."""
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def failed(self) -> BaseException | None:
        return self._errors[0] if self._errors else None
