"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, and their key strings.

A note is UTF-8 text ending in a newline, then a blank line, then signature lines
`— <key name> <base64(4-byte key id || 64-byte signature)>`; the signature covers the
text exactly. Key id = the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key).
Key strings are those of Go's golang.org/x/mod/sumdb/note, so either side can read
the other's keys:

    verifier  <name>+<8 hex digits of the key id>+<base64(0x01 || 32-byte public key)>
    signer    PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte Ed25519 seed)>

`open_note` returns the text only if at least one signature by a given verifier key is
valid, and raises `NoteError` naming what failed otherwise. Signatures by unknown keys
are ignored, as the spec says, so a note may carry the old and new keys' signatures
during a key rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_ED25519 = b"\x01"
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note or key that does not parse or verify; the message says which check failed."""


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError("a key name must be non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class Verifier:
    name: str
    id: bytes
    public: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        name, _, rest = text.strip().partition("+")
        hex_id, _, data = rest.partition("+")
        try:
            raw = base64.b64decode(data, validate=True)
            kid = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise NoteError("verifier key: not <name>+<hex id>+<base64 key>") from None
        if len(kid) != 4 or len(raw) != 33 or raw[:1] != _ED25519:
            raise NoteError("verifier key: not an Ed25519 key of the form <name>+<id>+<key>")
        if key_id(_check_name(name), raw[1:]) != kid:
            raise NoteError("verifier key: the key id does not match the name and key")
        return cls(name, kid, raw[1:])

    def __str__(self) -> str:
        data = base64.b64encode(_ED25519 + self.public).decode()
        return f"{self.name}+{self.id.hex()}+{data}"


class Signer:
    """An Ed25519 signing key with its name. `repr` never shows the key."""

    def __init__(self, name: str, seed: bytes) -> None:
        self.name = _check_name(name)
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes_raw()
        self.verifier = Verifier(name, key_id(name, public), public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signing key: not PRIVATE+KEY+<name>+<id>+<key>")
        try:
            raw = base64.b64decode(parts[4], validate=True)
        except binascii.Error:
            raise NoteError("signing key: the key is not base64") from None
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise NoteError("signing key: not an Ed25519 key")
        signer = cls(parts[2], raw[1:])
        if signer.verifier.id.hex() != parts[3]:
            raise NoteError("signing key: the key id does not match the name and key")
        return signer

    def secret(self) -> str:
        """The signer key string; only `ledger keygen` prints it."""
        seed = base64.b64encode(_ED25519 + self._key.private_bytes_raw()).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.id.hex()}+{seed}"

    def signature_line(self, text: str) -> str:
        sig = self._key.sign(text.encode())
        return f"{_DASH}{self.name} {base64.b64encode(self.verifier.id + sig).decode()}\n"

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, id={self.verifier.id.hex()})"


def sign(text: str, *signers: Signer) -> bytes:
    """The signed note: text, a blank line, one signature line per signer."""
    _check_text(text)
    return (text + "\n" + "".join(s.signature_line(text) for s in signers)).encode()


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(c < " " and c != "\n" for c in text):
        raise NoteError("note: the text must end in a newline and hold no control characters")


def open_note(data: bytes, verifier: Verifier) -> str:
    """The note's text, if `verifier` signed it; else NoteError naming what failed."""
    try:
        message = data.decode()
    except UnicodeDecodeError:
        raise NoteError("note: not UTF-8") from None
    text, sep, sigs = message.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise NoteError("note: no signature block")
    text += "\n"
    _check_text(text)
    found = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError("note: a malformed signature line")
        name, _, b64 = line[len(_DASH) :].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("note: a signature that is not base64") from None
        if name != verifier.name or raw[:4] != verifier.id:
            continue  # another key's signature (a rotation, a witness): not ours to judge
        found = True
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(f"signature: invalid signature by {verifier.name}") from None
    if not found:
        raise NoteError(f"signature: no signature by the key {verifier.name}+{verifier.id.hex()}")
    return text
