"""Operations commands of the `trace-stream` CLI: replay, dead letters, config check.

    replay        trade.closed over a range -> the same plan as the service -> delay topic
    dlq list      dead-letter topic -> filtered table
    dlq redrive   dead letters holding a delivery -> delay topic, attempt 0, due now
    check-config  settings + adapters validated, masked, Kafka/topics/trackers reachable
    signals show  signal settings topic -> one signal's entry and each adapter's decision
    ledger keygen a new signing key for the ledger -> its verifier key
    verify        a signal's published ledger -> signature, tree, growth, record

Each command is `func(settings, args) -> exit code`; failures raise ConfigError or
TraceStreamError with a one-line message that `cli.main` prints.
"""

from __future__ import annotations

import argparse

from trace_stream.ops import check, dlq, ledger, replay, signals, verify


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the operations subcommands to the CLI's subparsers."""
    replay.register(sub)
    dlq.register(sub)
    check.register(sub)
    signals.register(sub)
    ledger.register(sub)
    verify.register(sub)
