"""Writing a file on local disk all or nothing, and durably: what the file export and
the ledger's local store both rely on.

`write(root, path, data)`: the bytes go to a temporary file beside the target, which
is fsynced, renamed over the target (atomic on POSIX), and then the directory is
fsynced, with every directory this call created, up to the first that existed: after a
crash the target is either the old file or the new one, never a torn one, and a file
that was said to be written survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def write(root: Path, path: str, data: bytes, mode: int = 0o644) -> None:
    target = root / path
    folder = target.parent
    existed = next(p for p in (folder, *folder.parents) if p.is_dir())
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(folder)
    created = folder
    while created != existed:  # a new directory's own entry must be durable too
        fsync_dir(created.parent)
        created = created.parent


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
