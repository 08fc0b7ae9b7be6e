"""The Go ledger verifier (devenv/tlogverify), built once into the cache outside the repo.

`binary()` returns the path of `tlogverify` built from the committed Go source with the
pinned module versions of its go.mod/go.sum (fetched through the Go module proxy), in
$TRACE_STREAM_CACHE (default ~/.cache/trace-stream)/tlogverify/<hash of the source>/,
building it first if that version is not there. Needs `go` on PATH.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "tlogverify"
CACHE = Path(os.environ.get("TRACE_STREAM_CACHE", Path.home() / ".cache" / "trace-stream"))


def binary() -> Path:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    target = CACHE / "tlogverify" / digest.hexdigest()[:16] / "tlogverify"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go verifier needs Go (https://go.dev/dl/) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".tlogverify.{os.getpid()}")
    subprocess.run(
        [go, "build", "-o", str(temp), "."],
        cwd=SOURCE,
        check=True,
        timeout=600,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    os.replace(temp, target)
    return target


if __name__ == "__main__":
    print(binary())
