"""RFC 6962 hashing and proofs: known vectors, every proof verifies, any edit breaks it."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trace_stream.core.tlog import merkle

# Leaves and roots of the RFC 6962 test tree used by Go's transparency-dev/merkle tests
# (testonly.LeafInputs, RootHashes): here the roots of sizes 1, 2, 3 and 8.
INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70).map(
    lambda xs: [merkle.leaf_hash(x) for x in xs]
)


def test_known_roots() -> None:
    leaves = [merkle.leaf_hash(x) for x in INPUTS]
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    for size, expected in ROOTS.items():
        assert merkle.root(leaves[:size]).hex() == expected


def test_leaf_and_node_are_domain_separated() -> None:
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert base64.b64encode(merkle.leaf_hash(b"")).startswith(b"bjQLnP")


@given(leaf_lists, st.data())
def test_every_inclusion_proof_verifies_and_any_edit_breaks_it(leaves, data) -> None:
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(index, leaves)
    top = merkle.root(leaves)
    merkle.verify_inclusion(index, n, leaves[index], proof, top)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(index, n, merkle.leaf_hash(b"other"), proof, top)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], bytes(32), *proof[k + 1 :]]
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, n, leaves[index], bad, top)
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(index, n, leaves[index], proof[:-1], top)
    if n > 1:
        other = (index + 1) % n
        if leaves[other] != leaves[index]:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(other, n, leaves[index], proof, top)


@given(leaf_lists, st.data())
def test_every_consistency_proof_verifies_and_a_rewrite_breaks_it(leaves, data) -> None:
    n = len(leaves)
    m = data.draw(st.integers(0, n))
    proof = merkle.consistency_proof(m, leaves)
    merkle.verify_consistency(m, n, merkle.root(leaves[:m]), merkle.root(leaves), proof)
    if m > 0:
        k = data.draw(st.integers(0, m - 1))
        rewritten = [*leaves[:k], merkle.leaf_hash(b"forged"), *leaves[k + 1 :]]
        if rewritten[k] != leaves[k]:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(
                    m, n, merkle.root(rewritten[:m]), merkle.root(leaves), proof
                )
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(
                    m, n, merkle.root(leaves[:m]), merkle.root(rewritten), proof
                )


def test_a_shrunk_or_forked_tree_is_named() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(5)]
    with pytest.raises(merkle.ProofError, match="shrank"):
        merkle.verify_consistency(5, 4, merkle.root(leaves), merkle.root(leaves[:4]), [])
    with pytest.raises(merkle.ProofError, match="fork"):
        merkle.verify_consistency(5, 5, merkle.root(leaves), bytes(32), [])
