"""Structured logs: JSON lines by default, human-readable text on a terminal.

Fields passed through `extra=` become JSON keys. Callers pass identifiers only
(trade id, adapter, topic/partition/offset); personal fields never reach a logger
because nothing after redaction holds them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
# Built once: json.dumps builds an encoder on every call that passes an option.
_encode = json.JSONEncoder(default=str).encode


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


@lru_cache(maxsize=2)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    """One JSON object per line. A line per trade is the busiest output of the service,
    so the timestamp is formatted once a second and the encoder built once."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": f"{_utc_second(int(record.created))}.{int(record.msecs):03d}+00:00",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname:<5} {record.getMessage()} {fields}".rstrip()
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str = "auto", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    text = fmt == "text" or (fmt == "auto" and sys.stderr.isatty())
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    handler.set_name("trace-stream")
    root = logging.getLogger()
    # Replace only a handler this function installed before; others (a test
    # runner's capture, say) stay.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "trace-stream"]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format shows the process name, which every record would look up.
    logging.logMultiprocessing = False
    # httpx logs every request URL at INFO; a URL can carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # botocore logs the access key id at DEBUG.
    logging.getLogger("botocore").setLevel(logging.INFO)


class Tally:
    """Counts of events whose own lines are DEBUG, said at INFO in one line every
    `every` seconds (none when nothing happened): a line per trade costs the service
    about a tenth of its CPU."""

    def __init__(
        self,
        logger: logging.Logger,
        message: str,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._message = message
        self._every = every
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._since = clock()

    def add(self, key: str, n: int = 1) -> None:
        self._counts[key] = self._counts.get(key, 0) + n

    def report(self, **fields: Any) -> None:
        """Log the counts if `every` seconds have passed since the last line; cheap to
        call often."""
        if self._clock() - self._since < self._every:
            return
        if self._counts:
            self._logger.info(self._message, extra={**fields, **self._counts})
        self._counts = {}
        self._since = self._clock()
