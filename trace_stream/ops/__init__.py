"""Operations commands of the `trace-stream` CLI (replay, dead letters, config check)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the operations subcommands to the CLI's subparsers."""
    _ = (sub, argparse)
