"""`trace-stream ledger keygen`: a new Ed25519 signing key for the ledger's checkpoints.

The signer key string goes to a new file with mode 0600 (never replacing one) or, with
`--stdout`, to standard output; the public verifier key, which followers give to
`trace-stream verify --key`, is printed either way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trace_stream.core.errors import ConfigError
from trace_stream.core.tlog.note import NoteError, Signer
from trace_stream.settings import Settings

HELP = """\
Make a new Ed25519 signing key for the ledger adapter's checkpoints. NAME is the key's
name, written in every signature line and the start of every log's origin line (e.g.
ledger.example.com). Give the signer key to the service as LEDGER_SIGNING_KEY_FILE (or
LEDGER_SIGNING_KEY, from a secret); publish the verifier key. To rotate, sign with both
keys for a while (see docs): a checkpoint may carry several signatures.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ledger", help="ledger keys", description="The ledger's signing keys.")
    actions = p.add_subparsers(dest="action", required=True, metavar="{keygen}")
    keygen = actions.add_parser(
        "keygen",
        help="make a signing key and print its verifier key",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument("--name", required=True, help="the key's name, e.g. ledger.example.com")
    where = keygen.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the signer key to this new file (0600)")
    where.add_argument("--stdout", action="store_true", help="print the signer key instead")
    keygen.set_defaults(func=run)


def run(_: Settings, args: argparse.Namespace) -> int:
    try:
        signer = Signer.generate(args.name)
    except NoteError as exc:
        raise ConfigError(f"--name: {exc}") from None
    if args.stdout:
        print(signer.secret())
    else:
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"--out: {args.out} exists; a key is never replaced") from None
        except OSError as exc:
            raise ConfigError(f"--out: cannot create {args.out} ({exc.strerror})") from None
        with os.fdopen(fd, "w") as out:
            out.write(signer.secret() + "\n")
        print(f"signer key written to {args.out}", file=sys.stderr)
    print(signer.verifier)
    return 0
