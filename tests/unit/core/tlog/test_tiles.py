"""tlog-tiles paths, bundles, and the right edge against the whole tree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trace_stream.core.tlog import merkle, tiles


def test_paths_follow_the_spec() -> None:
    assert tiles.index_path(0) == "000"
    assert tiles.index_path(5) == "005"
    assert tiles.index_path(1000) == "x001/000"
    assert tiles.index_path(1234067) == "x001/x234/067"
    assert tiles.tile_path(1, 3, 5) == "tile/1/003.p/5"
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.bundle_path(2, 17) == "tile/entries/002.p/17"


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundles_round_trip(entries) -> None:
    assert tiles.decode_bundle(tiles.encode_bundle(entries)) == entries


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=8))
def test_the_edge_computes_the_root_and_the_tiles_of_every_size(chunks) -> None:
    edge = tiles.Edge()
    leaves: list[bytes] = []
    written: dict[str, bytes] = {}
    for k in chunks:
        new = [merkle.leaf_hash(str(len(leaves) + i).encode()) for i in range(k)]
        written.update(edge.append(new))
        leaves += new
        assert edge.root() == merkle.root(leaves)
    n = len(leaves)
    for level, index, width in tiles.edge_tiles(n):
        assert tiles.tile_path(level, index, width) in written
    reloaded = tiles.Edge(
        n,
        {
            lv: tiles.decode_tile(written[tiles.tile_path(lv, i, w)])
            for lv, i, w in tiles.edge_tiles(n)
        },
    )
    assert reloaded.root() == merkle.root(leaves)
    full = [p for p in written if ".p/" not in p and p.startswith("tile/0/")]
    assert len(full) == n // tiles.WIDTH
