"""Verifying a published log: the checkpoint's signature, the tree, the entries, growth.

Pure: the caller passes `fetch(path) -> bytes | None` (None for a file that is not
there), relative to the log's prefix, so a folder, a URL and an S3 prefix verify alike.

- `audit` is the full audit: it reads every entry bundle the checkpoint covers,
  recomputes the tree, and checks that it hashes to the signed root, that every hash
  tile of this size holds the recomputed hashes, and that every entry is a canonical
  trade appearing once.
- `prove` checks the inclusion proofs of some trades: the bundles locate each trade,
  the level-0 hash tiles (checked against the signed root first) give its audit path.
- `extends` proves that a checkpoint seen before is a prefix of the new one.

Each failure raises `AuditError` whose message names what failed, in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from trace_stream.core.records import Trace
from trace_stream.core.tlog import entry, merkle, tiles
from trace_stream.core.tlog.checkpoint import Checkpoint, open_checkpoint
from trace_stream.core.tlog.note import NoteError, Verifier

Fetch = Callable[[str], bytes | None]
CHECKPOINT = "checkpoint"


class AuditError(Exception):
    """The log does not verify; the message says which check failed."""


@dataclass(frozen=True)
class Verified:
    checkpoint: Checkpoint
    leaves: list[bytes]
    """Every leaf hash of the tree, verified against the signed root."""
    trades: list[Trace]
    """The trades whose entries were verified (all of them after a full audit)."""


def checkpoint(fetch: Fetch, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    data = fetch(CHECKPOINT)
    if data is None:
        raise AuditError("checkpoint: not found")
    try:
        cp = open_checkpoint(data, verifier)
    except NoteError as exc:
        raise AuditError(str(exc)) from None
    if origin is not None and cp.origin != origin:
        raise AuditError(f"checkpoint: origin {cp.origin!r}, expected {origin!r}")
    return cp


def _entries(fetch: Fetch, size: int) -> list[bytes]:
    out: list[bytes] = []
    for n in range((size + tiles.WIDTH - 1) // tiles.WIDTH):
        width = min(tiles.WIDTH, size - n * tiles.WIDTH)
        path = tiles.bundle_path(n, width)
        data = fetch(path)
        if data is None:
            raise AuditError(f"entry bundle {path}: missing")
        try:
            bundle = tiles.decode_bundle(data)
        except ValueError as exc:
            raise AuditError(f"{path}: {exc}") from None
        if len(bundle) != width:
            raise AuditError(f"entry bundle {path}: {len(bundle)} entries, expected {width}")
        out += bundle
    return out


def _trades(entries: Iterable[tuple[int, bytes]]) -> list[Trace]:
    trades: list[Trace] = []
    seen: dict[str, int] = {}
    for index, data in entries:
        try:
            trade = entry.decode(data)
        except ValueError:
            raise AuditError(f"entry {index}: not a canonical trade") from None
        if trade.trade_id in seen:
            raise AuditError(
                f"entry {index}: trade {trade.trade_id} already at entry {seen[trade.trade_id]}"
            )
        seen[trade.trade_id] = index
        trades.append(trade)
    return trades


def audit(fetch: Fetch, cp: Checkpoint) -> Verified:
    entries = _entries(fetch, cp.size)
    leaves = [merkle.leaf_hash(e) for e in entries]
    edge = tiles.Edge()
    expected = edge.append(leaves)
    if edge.root() != cp.root:
        raise AuditError(
            f"tree: the {cp.size} entries do not hash to the checkpoint's root "
            "(an entry was changed, removed, added or reordered)"
        )
    for path, data in sorted(expected.items()):
        if fetch(path) != data:
            raise AuditError(f"hash tile {path}: missing or not the hashes of the entries")
    return Verified(cp, leaves, _trades(enumerate(entries)))


def _tile_leaves(fetch: Fetch, cp: Checkpoint) -> list[bytes]:
    leaves: list[bytes] = []
    for n in range((cp.size + tiles.WIDTH - 1) // tiles.WIDTH):
        path = tiles.tile_path(0, n, min(tiles.WIDTH, cp.size - n * tiles.WIDTH))
        data = fetch(path)
        if data is None:
            raise AuditError(f"hash tile {path}: missing")
        leaves += tiles.decode_tile(data)
    if len(leaves) != cp.size or merkle.root(leaves) != cp.root:
        raise AuditError("hash tiles: level 0 does not hash to the checkpoint's root")
    return leaves


def prove(fetch: Fetch, cp: Checkpoint, trade_ids: Iterable[str]) -> Verified:
    """Each trade's inclusion proof, from the hash tiles, checked against the signed root."""
    leaves = _tile_leaves(fetch, cp)
    located: dict[str, tuple[int, bytes]] = {}
    for index, data in enumerate(_entries(fetch, cp.size)):
        try:
            located.setdefault(entry.decode(data).trade_id, (index, data))
        except ValueError:
            continue  # an entry that is not a trade cannot be one we were asked for
    proven: list[tuple[int, bytes]] = []
    for trade_id in trade_ids:
        if trade_id not in located:
            raise AuditError(f"trade {trade_id}: not in the log")
        index, data = located[trade_id]
        proof = merkle.inclusion_proof(index, leaves)
        try:
            merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(data), proof, cp.root)
        except merkle.ProofError as exc:
            raise AuditError(f"trade {trade_id}: {exc}") from None
        proven.append((index, data))
    return Verified(cp, leaves, _trades(proven))


def extends(old: Checkpoint, new: Verified) -> None:
    """AuditError unless the tree of `old` is a prefix of the verified new tree."""
    cp = new.checkpoint
    if old.origin != cp.origin:
        raise AuditError(f"consistency: origin {cp.origin!r}, previously {old.origin!r}")
    if old.size > cp.size:
        raise AuditError(f"consistency: the log shrank from {old.size} to {cp.size} entries")
    proof = merkle.consistency_proof(old.size, new.leaves)
    try:
        merkle.verify_consistency(old.size, cp.size, old.root, cp.root, proof)
    except merkle.ProofError as exc:
        raise AuditError(str(exc)) from None
