"""`trace-stream verify` and `ledger keygen`: a good log verifies; each way an adversary
(or the operator, holding the key) could edit a published log is caught, with a reason
naming what failed, in one line, exit 1."""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.adapters.harness import make_trace
from trace_stream.adapters.ledger_store import LocalLogStore
from trace_stream.core.records import Trace
from trace_stream.core.tlog import tiles
from trace_stream.core.tlog.ledger import CHECKPOINT, Log
from trace_stream.core.tlog.note import Signer

from .conftest import Cli

SIGNER = Signer.generate("ledger.example")
VKEY = str(SIGNER.verifier)
ORIGIN = "ledger.example/sig-eurusd-momentum"


def write(root: Path, traces: list[Trace], batch: int = 100, signer: Signer = SIGNER) -> Log:
    """Append `traces` in batches, as the adapter does, and publish each checkpoint."""
    store, log = LocalLogStore(root.parent), Log(ORIGIN)
    for start in range(0, len(traces), batch):
        appended = log.append(traces[start : start + batch], signer)
        for path, data in appended.files.items():
            store.write(root.name, path, data)
        store.write(root.name, CHECKPOINT, appended.signed)
    return log


@pytest.fixture
def log(tmp_path: Path) -> Path:
    root = tmp_path / "sig-eurusd-momentum"
    write(root, [make_trace(i) for i in range(300)])
    return root


def verify(cli: Cli, root: Path | str, *more: str):
    return cli("verify", "--key", VKEY, "--log", str(root), "--origin", ORIGIN, *more)


def test_a_good_log_verifies_with_its_record(cli: Cli, log: Path) -> None:
    ran = verify(cli, log)
    assert ran.code == 0, ran.err
    assert f"verified {ORIGIN}: 300 entries" in ran.out
    assert "trades: 300 (all entries)" in ran.out
    assert (
        "first close: 2025-11-20T09:30:00+00:00, last close: 2025-11-20T14:29:00+00:00" in ran.out
    )
    pnl = sum(make_trace(i).profit_loss for i in range(300))
    assert f"P&L sum: {pnl:.2f}" in ran.out


def test_inclusion_proofs_of_named_trades(cli: Cli, log: Path) -> None:
    ran = verify(cli, log, "--trade", "trade-000007", "--trade", "trade-000299")
    assert ran.code == 0, ran.err
    assert "trades: 2 (2 proven)" in ran.out
    missing = verify(cli, log, "--trade", "trade-999999")
    assert (missing.code, missing.err.strip()) == (
        1,
        f"trace-stream: verify {log}: FAILED: trade trade-999999: not in the log",
    )
    tile = log / tiles.tile_path(0, 0)
    tile.write_bytes(tile.read_bytes()[:-1] + b"\x00")
    ran = verify(cli, log, "--trade", "trade-000007")
    assert ran.code == 1
    assert "hash tiles: level 0 does not hash to the checkpoint's root" in ran.err


def _bundle(log: Path, n: int, width: int) -> tuple[Path, list[bytes]]:
    path = log / tiles.bundle_path(n, width)
    return path, tiles.decode_bundle(path.read_bytes())


def _delete_entry(log: Path) -> None:
    path, entries = _bundle(log, 1, 44)
    path.write_bytes(tiles.encode_bundle(entries[:10] + entries[11:]))


def _change_one_byte(log: Path) -> None:
    path, _ = _bundle(log, 0, 256)
    data = path.read_bytes()
    at = data.index(b'"profit_loss":') + len(b'"profit_loss":')
    path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])


def _swap_two(log: Path) -> None:
    path, entries = _bundle(log, 0, 256)
    entries[3], entries[4] = entries[4], entries[3]
    path.write_bytes(tiles.encode_bundle(entries))


def _another_key(log: Path) -> None:
    other = Signer.generate("ledger.example")  # same name, another key
    for p in [log / "tile", log / CHECKPOINT]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    write(log, [make_trace(i) for i in range(300)], signer=other)


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "delete an entry": (
        _delete_entry,
        "entry bundle tile/entries/001.p/44: 43 entries, expected 44",
    ),
    "change one byte": (
        _change_one_byte,
        "tree: the 300 entries do not hash to the checkpoint's root",
    ),
    "swap two entries": (_swap_two, "tree: the 300 entries do not hash to the checkpoint's root"),
    "sign with another key": (
        _another_key,
        f"signature: no signature by the key {SIGNER.verifier.name}+{SIGNER.verifier.id.hex()}",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_an_edited_log_fails_with_the_reason(cli: Cli, log: Path, case: str) -> None:
    edit, reason = TAMPERING[case]
    edit(log)
    ran = verify(cli, log)
    assert ran.code == 1
    assert ran.out == ""
    assert ran.err.count("\n") == 1
    assert ran.err.startswith(f"trace-stream: verify {log}: FAILED: {reason}")


def _rewrite(log: Path, keep: int, then: list[Trace]) -> None:
    """The operator, holding the key, rewrites history: a new log from `keep` entries on."""
    shutil.rmtree(log)
    write(log, [make_trace(i) for i in range(keep)] + then)


def test_truncate_and_regrow_is_a_rewrite(cli: Cli, log: Path, tmp_path: Path) -> None:
    state = tmp_path / "seen.json"
    assert verify(cli, log, "--state", str(state)).code == 0
    regrown = [make_trace(1000 + i) for i in range(180)]  # losing trades dropped, others added
    _rewrite(log, 150, regrown)
    assert verify(cli, log).code == 0  # on its own, the new log is well formed
    ran = verify(cli, log, "--state", str(state))
    assert ran.code == 1
    assert "consistency: the tree of size 300 was rewritten" in ran.err
    assert json.loads(state.read_text())[ORIGIN]["size"] == 300  # the state keeps the old one


def test_a_different_checkpoint_of_the_same_size_is_a_fork(
    cli: Cli, log: Path, tmp_path: Path
) -> None:
    state = tmp_path / "seen.json"
    assert verify(cli, log, "--state", str(state)).code == 0
    _rewrite(log, 299, [make_trace(5000)])
    ran = verify(cli, log, "--state", str(state))
    assert ran.code == 1
    assert "consistency: two different trees of size 300 (a fork)" in ran.err


def test_growth_is_proven_and_a_rollback_refused(cli: Cli, log: Path, tmp_path: Path) -> None:
    state = tmp_path / "seen.json"
    old_checkpoint = (log / CHECKPOINT).read_bytes()
    assert verify(cli, log, "--state", str(state)).code == 0
    _rewrite(log, 300, [make_trace(300 + i) for i in range(20)])
    ran = verify(cli, log, "--state", str(state))
    assert ran.code == 0, ran.err
    assert "extends the checkpoint of size 300 seen before" in ran.out
    assert json.loads(state.read_text())[ORIGIN]["size"] == 320
    (log / CHECKPOINT).write_bytes(old_checkpoint)  # served an old, smaller checkpoint
    ran = verify(cli, log, "--state", str(state))
    assert ran.code == 1
    assert "consistency: the log shrank from 320 to 300 entries" in ran.err


def test_keygen_writes_a_private_file_and_prints_the_verifier(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ledger.key"
    ran = cli("ledger", "keygen", "--name", "ledger.example", "--out", str(out))
    assert ran.code == 0, ran.err
    signer = Signer.parse(out.read_text())
    assert ran.out.strip() == str(signer.verifier)
    assert "PRIVATE" not in ran.out
    assert os.stat(out).st_mode & 0o777 == 0o600
    again = cli("ledger", "keygen", "--name", "ledger.example", "--out", str(out))
    assert again.code == 2 and "never replaced" in again.err
    printed = cli("ledger", "keygen", "--name", "ledger.example", "--stdout")
    secret, public = printed.out.split()
    assert str(Signer.parse(secret).verifier) == public


def test_a_log_served_over_http_verifies(cli: Cli, log: Path) -> None:
    handler = functools.partial(QuietHandler, directory=str(log))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            ran = verify(cli, url, "--trade", "trade-000042")
            assert ran.code == 0, ran.err
            assert "trades: 1 (1 proven)" in ran.out
            (log / CHECKPOINT).unlink()
            ran = verify(cli, url)
            assert ran.code == 1 and "FAILED: checkpoint: not found" in ran.err
        finally:
            server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None
