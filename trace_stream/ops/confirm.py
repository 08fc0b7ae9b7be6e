"""Ask before a command moves many records: a redrive or replay of more than
`CONFIRM_OVER` records goes on only with `--yes`, or once the user answers yes on a
terminal. Without a terminal and without `--yes` it stops with one line."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from trace_stream.core.errors import ConfigError

CONFIRM_OVER = 1000


def add_yes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"go on without asking when more than {CONFIRM_OVER:,} records would move",
    )


def confirm(
    what: str,
    n: int,
    *,
    yes: bool,
    stdin: TextIO | None = None,
    stderr: TextIO | None = None,
) -> None:
    """Return to go on; raise ConfigError (exit 2) when the user did not agree."""
    if n <= CONFIRM_OVER or yes:
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if not stdin.isatty():
        raise ConfigError(
            f"{what}: {n:,} records would move (more than {CONFIRM_OVER:,}); rerun with "
            "--yes, or narrow the selection (see --help)"
        )
    stderr.write(f"{what}: {n:,} records would move. Go on? [y/N] ")
    stderr.flush()
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError(f"{what}: not confirmed; nothing written")
