"""The C allocator's settings, fixed at start so that memory freed after a message goes back.

A message is held in blocks of its own size (the bytes read, the copies the relay makes), and
Python gives such blocks to glibc's malloc. glibc serves a block of 128 KiB or more with its
own mmap and unmaps it when freed, but only until the first such block is freed: from then on
the threshold rises to the size of the block freed (mallopt(3), M_MMAP_THRESHOLD, "dynamic
mmap threshold"), later blocks come from the heap, and the heap keeps what it had at the peak
(free but resident, fragmented among smaller live blocks). Setting the threshold (and the trim
threshold) explicitly turns that adjustment off: blocks past it are mapped and unmapped each
time, so the resident size follows the messages in progress, not the busiest moment since
start. The threshold is the size of a large message (below), whose blocks are few and big.

Blocks under the threshold (a message read line by line is many of them) still come from the
heap, and the heap gives back only its free top. ``trimmer`` gives what the DATA budget calls
once the last large message in progress is done: malloc_trim(3), which returns every free page
of the heap, wherever it lies, so a burst of large messages leaves no lasting mark.

On a C library without ``mallopt`` (musl) nothing is done: its allocator returns large blocks
by itself.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks from 1 MiB (the DATA budget's default large_message_threshold) are mapped and unmapped
# each time. Smaller ones come from the heap, reused from message to message: mapping every
# block of a 1 MB message anew costs its page faults again each time (some 10% of the CPU of a
# 1 MB relay, measured), while what the heap keeps for them is bounded by max_concurrent_data.
MMAP_THRESHOLD = 1024 * 1024
# Free memory at the top of the heap past this goes back to the system: twice the mmap
# threshold, as glibc's own adjustment sets it.
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


def fix_thresholds(log: Any) -> bool:
    """Fix glibc's mmap and trim thresholds (see the module docstring); True when done."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("allocator left as it is", reason="no mallopt in this C library")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and done
    if not done:
        log.warning("allocator thresholds not set", mmap_threshold=MMAP_THRESHOLD)
    return done


def trimmer() -> Callable[[], None] | None:
    """A function that gives the heap's free pages back to the system (malloc_trim(0)), or
    None when the C library has none."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int

    def trim() -> None:
        malloc_trim(0)

    return trim
