"""Give the memory the process has freed back to the operating system (glibc only).

glibc's malloc keeps what a thread frees in that thread's arena, and gives a page
back only from the top of the arena. The Kafka clients' threads allocate and free
fetch and produce buffers by the megabyte, while a few small blocks stay alive
among them; so with 1,000,000 deliveries read and waiting, one arena held 123 MB of
which 0.2 MB was in use, and that was half the process's RSS (`malloc_stats`, in
bench/memory.py's scenario). `release` asks glibc to return the free pages of every
arena (`malloc_trim(0)`); the service calls it every `RELEASE_EVERY` seconds. Where
the C library has no `malloc_trim` (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

RELEASE_EVERY = 10.0
"""Seconds between releases. While stage 1 reads a backlog at full speed, RSS climbs
about 1.4 MiB a second between releases (bench/memory.py; a release every 5 s brought
the peak from 242 to 234 MiB there). A release walks every arena holding its lock: a
few milliseconds in the service, about 26 ms for a heap of 200,000 large blocks."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release() -> bool:
    """Return the free pages of every malloc arena to the OS (the GIL is released
    meanwhile); False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
