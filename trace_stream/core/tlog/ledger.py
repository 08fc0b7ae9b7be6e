"""A signal's log as its writer holds it, and what one append publishes. Pure.

`Log.load` takes a published log only after a full audit (`core.tlog.audit`), so a writer
never extends a log it cannot verify. `Log.append` adds the trades whose ids are not in
the log yet (exactly once per trade id per log: a replayed, redriven or re-formed batch
appends nothing twice) and returns the files the new size publishes: the entry bundles
and hash tiles it completes or extends (paths no published checkpoint covers, since a
partial tile or bundle of a larger width has another path) and, last, the signed
checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trace_stream.core.records import Trace
from trace_stream.core.tlog import entry, merkle, tiles
from trace_stream.core.tlog.audit import CHECKPOINT, Verified
from trace_stream.core.tlog.checkpoint import Checkpoint
from trace_stream.core.tlog.note import Signer


@dataclass(frozen=True)
class Append:
    files: dict[str, bytes]
    """Bundles and tiles, to write (create-only) before the checkpoint."""
    checkpoint: Checkpoint
    signed: bytes
    added: int


class Log:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.size = 0
        self._edge = tiles.Edge()
        self._tail: list[bytes] = []  # the entries of the last, partial bundle
        self._ids: set[str] = set()

    @classmethod
    def load(cls, verified: Verified) -> Log:
        log = cls(verified.checkpoint.origin)
        log._edge.append(verified.leaves)
        log.size = verified.checkpoint.size
        log._ids = {t.trade_id for t in verified.trades}
        keep = log.size % tiles.WIDTH
        log._tail = [entry.encode(t) for t in verified.trades[len(verified.trades) - keep :]]
        if not keep:
            log._tail = []
        return log

    def has(self, trade_id: str) -> bool:
        return trade_id in self._ids

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.size, self._edge.root())

    def append(self, traces: Iterable[Trace], *signers: Signer) -> Append:
        """Signed by every signer given (several during a key rotation)."""
        new: list[bytes] = []
        for t in traces:
            if t.trade_id not in self._ids:
                self._ids.add(t.trade_id)
                new.append(entry.encode(t))
        old = self.size
        files: dict[str, bytes] = {}
        pending = self._tail + new
        first = old // tiles.WIDTH
        for i in range(0, len(pending), tiles.WIDTH):
            chunk = pending[i : i + tiles.WIDTH]
            files[tiles.bundle_path(first + i // tiles.WIDTH, len(chunk))] = tiles.encode_bundle(
                chunk
            )
        self.size = old + len(new)
        self._tail = pending[len(pending) - len(pending) % tiles.WIDTH :]
        if not new:
            files = {}
        files.update(self._edge.append(merkle.leaf_hash(e) for e in new))
        cp = self.checkpoint()
        signed = cp.signed(*signers)
        return Append(files, cp, signed, len(new))


__all__ = ["CHECKPOINT", "Append", "Log"]
