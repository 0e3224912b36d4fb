"""glibc malloc tuned once per process, so memory freed after one batch is reused by the next instead of being
handed back to the kernel and faulted in again, page by page (bench/RESULTS.md "memory").

By default glibc serves a block above its mmap threshold (128 KiB, raised on the fly up to 32 MiB) with a fresh
mmap and unmaps it on free, and trims the heap's top above 128 KiB: every batch's activations, decoded photos and
stacked tensors then come back as zero-filled pages, one minor fault each. Fixed thresholds keep those blocks in
the heap. ONNX Runtime keeps its own arena and is not affected either way.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): blocks below it come from the heap
TRIM_THRESHOLD = 512 << 20  # free memory the heap keeps before trimming: a few batches' worth
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (and the workers it forks); True when applied.
    Leaves alone a process whose allocator is not glibc's, or whose environment already sets the thresholds."""
    if any(name in os.environ for name in _ENV):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        mallopt = None
    if mallopt is None:
        return False
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds %s", "fixed" if applied else "left at glibc's defaults")
    return applied
