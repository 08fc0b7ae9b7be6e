"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): paths, entry bundles, hash tiles, the edge.

Tiles are 256 wide. A hash tile at level L holds the RFC 6962 hashes of the complete
subtrees of height 8·L, 32 bytes each, concatenated; level 0 holds the leaf hashes.
An entry bundle holds up to 256 entries, each prefixed with its length as 2 bytes
big-endian. Paths: `tile/<L>/<N>` and `tile/entries/<N>`, with N written in groups of
3 digits, every group but the last prefixed with `x` (1234067 -> `x001/x234/067`);
a partial tile or bundle of W < 256 items adds `.p/<W>`.

`Edge` holds the right edge of a tree (the rightmost, partial tile of each level): all
a writer needs to append leaves, to name and fill the tiles the append creates, and to
compute the new root, without reading the rest of the log.
"""

from __future__ import annotations

from collections.abc import Iterable

from trace_stream.core.tlog import merkle

WIDTH = 256
MAX_ENTRY = 0xFFFF


def index_path(n: int) -> str:
    digits = f"{n:03d}"
    groups = [digits[max(0, i - 3) : i] for i in range(len(digits), 0, -3)][::-1]
    if len(groups[0]) < 3:
        groups[0] = groups[0].zfill(3)
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _partial(width: int) -> str:
    return "" if width == WIDTH else f".p/{width}"


def tile_path(level: int, n: int, width: int = WIDTH) -> str:
    return f"tile/{level}/{index_path(n)}{_partial(width)}"


def bundle_path(n: int, width: int = WIDTH) -> str:
    return f"tile/entries/{index_path(n)}{_partial(width)}"


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY:
            raise ValueError(f"an entry of {len(e)} bytes is longer than {MAX_ENTRY}")
        out += len(e).to_bytes(2, "big") + e
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; ValueError if a length runs past the end."""
    entries, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("entry bundle: a length prefix is cut short")
        n = int.from_bytes(data[i : i + 2], "big")
        if i + 2 + n > len(data):
            raise ValueError("entry bundle: an entry runs past the end")
        entries.append(data[i + 2 : i + 2 + n])
        i += 2 + n
    return entries


def decode_tile(data: bytes) -> list[bytes]:
    if len(data) % merkle.HASH_SIZE:
        raise ValueError("hash tile: not a whole number of 32-byte hashes")
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


def edge_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the partial tile of each level of a tree of `size`."""
    out, level = [], 0
    while size >> (8 * level):
        nodes = size >> (8 * level)
        if nodes % WIDTH:
            out.append((level, nodes // WIDTH, nodes % WIDTH))
        level += 1
    return out


class Edge:
    """The right edge of a tree: per level, the hashes of its rightmost, partial tile."""

    def __init__(self, size: int = 0, levels: dict[int, list[bytes]] | None = None) -> None:
        self.size = size
        for level, _, width in edge_tiles(size):
            hashes = (levels or {}).get(level, [])
            if len(hashes) != width:
                raise ValueError(f"edge: level {level} needs {width} hashes, got {len(hashes)}")
        top = max((levels or {}).keys(), default=-1)
        self._levels: list[list[bytes]] = [
            list((levels or {}).get(lv, [])) for lv in range(top + 1)
        ]

    def root(self) -> bytes:
        """The RFC 6962 root: the complete subtrees, highest first, folded from the right."""
        peaks: list[bytes] = []
        for hashes in reversed(self._levels):
            start = 0
            for bit in reversed(range(8)):
                if len(hashes) & (1 << bit):
                    peaks.append(merkle.root(hashes[start : start + (1 << bit)]))
                    start += 1 << bit
        if not peaks:
            return merkle.EMPTY_ROOT
        acc = peaks[-1]
        for p in reversed(peaks[:-1]):
            acc = merkle.node_hash(p, acc)
        return acc

    def append(self, leaf_hashes: Iterable[bytes]) -> dict[str, bytes]:
        """Add leaves; return the hash tiles (path -> bytes) the new size publishes."""
        before = self.size
        out: dict[str, bytes] = {}
        for h in leaf_hashes:
            self.size += 1
            level, carry = 0, h
            while True:
                if level == len(self._levels):
                    self._levels.append([])
                hashes = self._levels[level]
                hashes.append(carry)
                if len(hashes) < WIDTH:
                    break
                index = ((self.size >> (8 * level)) - 1) // WIDTH
                out[tile_path(level, index)] = b"".join(hashes)
                carry = merkle.root(hashes)
                self._levels[level] = []
                level += 1
        for level, index, width in edge_tiles(self.size):
            if (before >> (8 * level)) != (self.size >> (8 * level)):
                out[tile_path(level, index, width)] = b"".join(self._levels[level])
        return out
