"""A hand-written one-line progress bar for long operations commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_CLEAR = "\r\x1b[K"
_WIDTH = 30


class Progress:
    """Counts work done out of `total` and redraws a bar on `stream` at most once per
    `interval` seconds, only when `stream` is a terminal; elsewhere it prints nothing
    (the command prints its summary line instead).

    Lines for the user go through `echo`, which erases the bar first so the two never
    share a line. `close` erases the bar; call it before the summary.
    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 0)
        self.done = 0
        self._label = label
        self._stream = stream
        self._interval = interval
        self._clock = clock
        self._on = stream.isatty()
        self._drawn_at: float | None = None
        self._visible = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self._on:
            return
        now = self._clock()
        if self._drawn_at is None or now - self._drawn_at >= self._interval:
            self._stream.write(_CLEAR + self.render())
            self._stream.flush()
            self._drawn_at = now
            self._visible = True

    def render(self) -> str:
        """`label [#####.....]  50%  5/10` (the count may pass an estimated total)."""
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = round(share * _WIDTH)
        bar = "#" * filled + "." * (_WIDTH - filled)
        return f"{self._label} [{bar}] {share:4.0%}  {self.done}/{self.total}"

    def echo(self, line: str, out: TextIO | None = None) -> None:
        """Print `line` (to stdout by default) without mixing it into the bar."""
        self._erase()
        print(line, file=out or sys.stdout, flush=self._on)

    def close(self) -> None:
        self._erase()

    def _erase(self) -> None:
        if self._visible:
            self._stream.write(_CLEAR)
            self._stream.flush()
            self._visible = False
