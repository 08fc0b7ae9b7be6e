"""`trace-stream verify`: what a follower runs to check a signal's published log.

Needs only the verifier key and read access to the log: a folder, an http(s) URL or
`s3://bucket/prefix` (boto3's usual credentials; AWS_ENDPOINT_URL for another endpoint).
Checks the checkpoint's signature, then either audits the whole log (core/tlog/audit.py) or,
with `--trade`, the inclusion proof of each trade named; with `--state`, proves that
the new checkpoint extends the last one verified for the same origin, and records it.
Any failure is one line naming what failed, exit 1. The summary is computed from
verified entries only.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
from pathlib import Path

from trace_stream.core.errors import ConfigError, TraceStreamError
from trace_stream.core.tlog import audit
from trace_stream.core.tlog.checkpoint import Checkpoint
from trace_stream.core.tlog.note import NoteError, Verifier
from trace_stream.ops.log_reader import fetcher
from trace_stream.settings import Settings

HELP = """\
Verify a signal's ledger: the checkpoint's signature by --key, then every entry against
the signed tree (or, with --trade, the inclusion proof of each trade named), and, with
--state, that the log only grew since the last run (a consistency proof). Prints the
signal's record from verified entries. Exit status: 0 verified, 1 the log failed a
check (the line says which), 2 bad arguments.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="verify a signal's ledger",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--key", required=True, help="verifier key, <name>+<id>+<base64 key>")
    p.add_argument("--log", required=True, help="folder, http(s) URL or s3://bucket/prefix")
    p.add_argument("--origin", help="the log's expected origin line (<key name>/<signal>)")
    p.add_argument("--state", type=Path, help="JSON file of the last checkpoint seen per log")
    p.add_argument("--trade", action="append", default=[], metavar="ID", help="prove this trade")
    p.set_defaults(func=run)


def run(_: Settings, args: argparse.Namespace) -> int:
    try:
        verifier = Verifier.parse(args.key)
    except NoteError as exc:
        raise ConfigError(f"--key: {exc}") from None
    fetch = fetcher(args.log)
    try:
        cp = audit.checkpoint(fetch, verifier, args.origin)
        verified = audit.prove(fetch, cp, args.trade) if args.trade else audit.audit(fetch, cp)
        state = _load(args.state) if args.state else {}
        seen = state.get(cp.origin)
        if seen is not None:
            audit.extends(seen, verified)
    except audit.AuditError as exc:
        raise TraceStreamError(f"verify {args.log}: FAILED: {exc}") from None
    if args.state and (seen is None or cp.size >= seen.size):
        state[cp.origin] = cp
        _save(args.state, state)
    print(_report(verified, verifier, seen))
    return 0


def _report(v: audit.Verified, key: Verifier, seen: Checkpoint | None) -> str:
    cp = v.checkpoint
    lines = [
        f"verified {cp.origin}: {cp.size} entries, root {base64.b64encode(cp.root).decode()}, "
        f"signed by {key.name}+{key.id.hex()}"
    ]
    if seen is not None:
        lines.append(f"  extends the checkpoint of size {seen.size} seen before")
    scope = "all entries" if len(v.trades) == cp.size else f"{len(v.trades)} proven"
    closes = sorted(t.closed_at for t in v.trades)
    pnl = math.fsum(t.profit_loss for t in v.trades)
    lines.append(f"  trades: {len(v.trades)} ({scope})")
    if closes:
        first, last = closes[0].isoformat(), closes[-1].isoformat()
        lines.append(f"  first close: {first}, last close: {last}")
    lines.append(f"  P&L sum: {pnl:.2f}")
    return "\n".join(lines)


def _load(path: Path) -> dict[str, Checkpoint]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--state: {path} is not a readable state file ({exc})") from None
    return {
        origin: Checkpoint(origin, int(c["size"]), base64.b64decode(c["root"]))
        for origin, c in raw.items()
    }


def _save(path: Path, state: dict[str, Checkpoint]) -> None:
    data = {
        o: {"size": c.size, "root": base64.b64encode(c.root).decode()} for o, c in state.items()
    }
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temp, path)
