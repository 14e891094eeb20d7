"""Allocator settings that let a long-running pipeline give freed batch memory back to the OS.

A pipeline allocates and frees the same few shapes all day: payloads and Arrow buffers of tens
of megabytes, and the ClickHouse engine's insert blocks. With the allocators' defaults they are
freed but not returned: glibc raises its mmap threshold after the first large free, so later
batches land in heap arenas that fragment and never shrink, and Arrow's mimalloc pool keeps its
own segments. Measured on ``logpipe bench --scenario embedded-max``: peak RSS 1.7-2.0 GB with the
defaults, 0.65-0.8 GB with these settings, at the same throughput.

Called once by each entry point (the ``logpipe`` command, the bench's scenario processes) before
the first batch; an explicit ``MALLOC_*`` or ``ARROW_DEFAULT_MEMORY_POOL`` variable wins.

One more setting cannot be made from inside: glibc reads its tunables when a process starts, so
whatever starts logpipe (``make up``, ``make bench``, the Docker image) sets ``GLIBC_TUNABLES`` to
``MALLOC_TUNABLES``. With it, glibc asks for transparent huge pages on the mappings it makes for
large blocks: each batch-sized allocation then takes a few page faults instead of thousands
(joining 100,000 Kafka values, 306 -> 123 ns each; ``embedded-max`` about 6% faster).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pyarrow as pa

MMAP_THRESHOLD_BYTES = 1 << 20  # allocations this large get their own mapping, unmapped when freed
ARENA_MAX = 2  # one heap arena per core of the target machine, not glibc's eight per core
MALLOC_TUNABLES = "glibc.malloc.hugetlb=1"
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
_M_ARENA_MAX = -8

_configured = False


def configure_allocators() -> dict[str, object]:
    """Apply the settings (once per process); returns what was applied (empty when called again)."""
    global _configured
    applied: dict[str, object] = {}
    if _configured:
        return applied
    _configured = True
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    applied["arrow_pool"] = pa.default_memory_pool().backend_name
    if applied["arrow_pool"] == "jemalloc":
        pa.jemalloc_set_decay_ms(0)  # free pages go back at once, not after jemalloc's default 1 s
    mallopt = _glibc_mallopt()
    if mallopt is not None:
        if "MALLOC_MMAP_THRESHOLD_" not in os.environ and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
            applied["malloc_mmap_threshold"] = MMAP_THRESHOLD_BYTES
        if "MALLOC_ARENA_MAX" not in os.environ and mallopt(_M_ARENA_MAX, ARENA_MAX):
            applied["malloc_arena_max"] = ARENA_MAX
        applied["malloc_huge_pages"] = MALLOC_TUNABLES in os.environ.get("GLIBC_TUNABLES", "")
    return applied


def _glibc_mallopt():
    """glibc's ``mallopt``, or None on another C library (musl, macOS), where the defaults stay."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
