"""Signed notes and keys: round trips, Go's key strings, and each refusal named."""

from __future__ import annotations

import pytest

from trace_stream.core.tlog.checkpoint import Checkpoint, open_checkpoint
from trace_stream.core.tlog.note import NoteError, Signer, Verifier, open_note, sign

# golang.org/x/mod/sumdb/note's example key pair (note_test.go, ExampleSign).
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNED = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_keys_and_signature_are_read() -> None:
    signer = Signer.parse(GO_SIGNER)
    assert str(signer.verifier) == GO_VERIFIER
    assert signer.secret() == GO_SIGNER
    text = open_note(GO_SIGNED.encode(), Verifier.parse(GO_VERIFIER))
    assert text.startswith("If you think")
    # Ed25519 is deterministic: the same key signs the same text into the same bytes.
    assert sign(text, signer) == GO_SIGNED.encode()


OTHER = Signer.generate("log.example")


def test_checkpoint_round_trip_and_key_rotation() -> None:
    old, new = Signer.generate("log.example"), Signer.generate("log.example")
    cp = Checkpoint("log.example/sig-1", 3, bytes(range(32)))
    signed = cp.signed(old, new)
    assert open_checkpoint(signed, old.verifier) == cp
    assert open_checkpoint(signed, new.verifier) == cp
    assert repr(old).count("PRIVATE") == 0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda b: b.replace(b"\n3\n", b"\n4\n"), "invalid signature"),
        (lambda b: b.split(b"\n\n")[0] + b"\n", "no signature block"),
        (lambda b: Checkpoint("log.example/sig-1", 3, bytes(32)).signed(OTHER), "no signature"),
    ],
)
def test_a_bad_signature_is_named(edit, reason) -> None:
    signer = Signer.generate("log.example")
    signed = Checkpoint("log.example/sig-1", 3, bytes(32)).signed(signer)
    with pytest.raises(NoteError, match=reason):
        open_checkpoint(edit(signed), signer.verifier)


def test_keys_that_do_not_parse_are_refused() -> None:
    with pytest.raises(NoteError, match="key id"):
        Verifier.parse(GO_VERIFIER.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError):
        Signer.parse("PRIVATE+KEY+x+00000000+AAAA")
    with pytest.raises(NoteError):
        Signer.generate("two words")
