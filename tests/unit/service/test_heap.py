"""heap.release returns the pages a thread freed, which glibc would otherwise keep."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from trace_stream.service import heap


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(heap._TRIM is None, reason="no malloc_trim in this C library")
def test_release_returns_what_a_thread_freed_among_live_blocks() -> None:
    kept: list[bytes] = []

    def churn() -> None:
        # 120 MiB in 100 KiB blocks (malloc'd, below glibc's mmap threshold) in this
        # thread's arena; one in 16 stays alive, so free() alone cannot trim the rest.
        blocks = [b"x" * (100 * 1024) for _ in range(1200)]  # written: resident
        kept.extend(blocks[::16])
        del blocks

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    before = rss_mib()
    assert heap.release()
    after = rss_mib()
    assert before - after > 60, f"RSS {before:.0f} -> {after:.0f} MiB"
    assert len(kept) == 75
