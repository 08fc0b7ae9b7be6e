"""C2SP tlog checkpoints (https://c2sp.org/tlog-checkpoint): a log's signed size and root.

The note text is three lines, each ending in a newline: the origin (the log's name), the
tree size in decimal without leading zeros, and the RFC 6962 root hash in standard
base64. Extension lines are not written; any that a reader finds are ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from trace_stream.core.tlog.merkle import HASH_SIZE
from trace_stream.core.tlog.note import NoteError, Signer, Verifier, open_note, sign

_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def signed(self, *signers: Signer) -> bytes:
        return sign(self.text(), *signers)


def parse(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0] or not _SIZE.fullmatch(lines[1]):
        raise NoteError("checkpoint: not <origin>, <size>, <root hash> lines")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        root = b""
    if len(root) != HASH_SIZE:
        raise NoteError("checkpoint: the root hash is not 32 bytes of base64")
    return Checkpoint(lines[0], int(lines[1]), root)


def open_checkpoint(data: bytes, verifier: Verifier) -> Checkpoint:
    """The checkpoint, if `verifier` signed it; NoteError naming the failed check if not."""
    return parse(open_note(data, verifier))
