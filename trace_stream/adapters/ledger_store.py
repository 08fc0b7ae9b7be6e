"""Where the ledger's logs live on local disk: one folder per signal, under LEDGER_DIR.

The single-writer rule: a signal's log is appended only while holding the exclusive
`flock` of its `<signal>/.lock`, from reading the checkpoint to replacing it. The kernel
releases the lock when its holder dies (SIGKILL included), so any number of deliverer
tasks, partitions and replicas on hosts that share the folder through a file system
with working `flock` can write one log, one append at a time, and never publish two
checkpoints of one size. A waiter gives up after half of LEDGER_TIMEOUT_SECONDS.

Every file appears whole or not at all (temp file, fsync, rename, fsync of the folder).
The checkpoint is the one file that is replaced; the writer names every other file
after a size no published checkpoint covers, so a published bundle or tile is never
written again. The files of an append that died before its checkpoint are covered by
no checkpoint: the next append (holding the lock) may replace them. On S3: ledger_s3.py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from trace_stream.adapters import durable
from trace_stream.adapters.base import Outcome, Permanent, Retriable

_PERMANENT_ERRNO = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR})


class Busy(Exception):
    """Another writer held the log's lock for the whole wait."""


class LocalLogStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    @contextlib.contextmanager
    def lock(self, log: str, wait: float) -> Iterator[None]:
        folder = self._root / log
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Busy from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self, log: str, path: str) -> bytes | None:
        try:
            return (self._root / log / path).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, log: str, path: str, data: bytes) -> None:
        durable.write(self._root / log, path, data)

    def classify(self, exc: Exception) -> Outcome | None:
        if isinstance(exc, Busy):
            return Retriable("storage", "the log is locked by another writer")
        if not isinstance(exc, OSError):
            return None
        detail = f"{type(exc).__name__} {errno.errorcode.get(exc.errno or 0, exc.errno)}"
        if exc.errno in _PERMANENT_ERRNO:
            return Permanent("storage", detail)
        return Retriable("storage", detail)

    def close(self) -> None:
        return None
