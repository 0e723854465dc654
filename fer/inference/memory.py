"""Keep freed memory in the process instead of returning it to the kernel after every batch.

glibc hands large freed blocks (a batch's activations) straight back to the kernel, so the next batch
faults the same pages in again, zeroed. On a small CPU that is most of an epoch's system time: evaluating
the production network in batches of 32 spent 1-2 s of every 3-4 in the kernel (600,000 page faults per
1,024 faces) and ran twice as fast with the thresholds below (`benchmarks/malloc.py`); a 1280×1280 photo
through the face pipeline took 80-85 ms instead of 96-106. The CLI, the demo and the served photo model
call it. The cost is that a process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # free heap kept before it is returned to the kernel
M_MMAP_THRESHOLD = -3  # blocks at least this large get their own mapping, unmapped on free
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries: left as they are
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
