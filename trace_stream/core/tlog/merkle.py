"""RFC 6962 (RFC 9162 section 2.1) Merkle tree hashing, proofs and their verification.

Pure and small, implemented from the RFC: a leaf hashes as SHA-256(0x00 || entry), an
interior node as SHA-256(0x01 || left || right), the tree of n leaves splits at the
largest power of two below n, and the empty tree's root is SHA-256 of nothing.
`inclusion_proof` and `consistency_proof` return the RFC's PATH and PROOF lists;
`verify_inclusion` and `verify_consistency` follow RFC 9162 sections 2.1.3.2 and
2.1.4.2 and raise `ProofError` (never return False) when a proof does not hold.
The builders take every leaf hash (a full audit has them); the log writer does not
need them, it keeps the tree's right edge in `core.tlog.tiles`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify; the message says which check failed."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes (already hashed with `leaf_hash`)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf `index`, leaf side first."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is outside a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[n]): proves the tree of old_size leaves is a prefix of this one."""
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"size {old_size} is outside a tree of {len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, leaves, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 2.1.3.2: raise ProofError unless `leaf` is leaf `index` of that tree."""
    if not 0 <= index < size:
        raise ProofError(f"inclusion: leaf {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion of leaf {index}: the proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion of leaf {index}: the proof is too short")
    if r != expected_root:
        raise ProofError(f"inclusion of leaf {index}: the root does not match the checkpoint")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise ProofError unless the old tree is a prefix of the new one."""
    if old_size > new_size:
        raise ProofError(f"consistency: the log shrank from {old_size} to {new_size}")
    if old_size == new_size:
        if proof or old_root != new_root:
            raise ProofError(f"consistency: two different trees of size {new_size} (a fork)")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency: a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency: the proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency: the proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency: the proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency: the tree of size {old_size} was rewritten")
    if sr != new_root:
        raise ProofError(f"consistency: the new root of size {new_size} does not match")
