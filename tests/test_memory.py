"""The allocator settings give a freed batch's memory back to the OS (peak RSS stays bounded)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Batches the way the pipeline makes them: payload bytes (C heap) and Arrow string columns (Arrow's
# pool), with a small object surviving each batch, as queues, metrics and logs leave behind.
WORKLOAD = """
import sys
import numpy as np, pyarrow as pa, pyarrow.compute as pc
if sys.argv[1] == "configured":
    from logpipe.memory import configure_allocators
    configure_allocators()

def rss_anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) / 1024

before = rss_anon_mb()
survivors = []
for i in range(20):
    column = pa.array(np.arange(1_000_000 + i).astype(str))
    joined = pc.binary_join_element_wise(column, column, "-")
    payloads = [bytearray(8_000_000) for _ in range(4)]
    survivors.append(bytearray(5_000))
    del column, joined, payloads
print(rss_anon_mb() - before)
"""


def _retained_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", WORKLOAD, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's and /proc's")
def test_freed_batches_are_returned_to_the_os():
    with_defaults = _retained_mb("defaults")
    configured = _retained_mb("configured")
    assert configured < 40, f"{configured:.0f} MB still held after every batch was freed"
    assert configured < with_defaults / 2, (with_defaults, configured)


def test_settings_are_applied_once_and_explicit_variables_win():
    script = ("import os; os.environ['ARROW_DEFAULT_MEMORY_POOL'] = 'jemalloc'\n"
              "from logpipe.memory import configure_allocators\n"
              "first, second = configure_allocators(), configure_allocators()\n"
              "print(first['arrow_pool'], first.get('malloc_mmap_threshold'), second)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    pool, threshold, again = done.stdout.split(maxsplit=2)
    assert pool == "jemalloc"  # the variable names the pool; logpipe does not replace it
    assert threshold == ("1048576" if platform.libc_ver()[0] == "glibc" else "None")
    assert again.strip() == "{}"
