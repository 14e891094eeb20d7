"""The allocator settings give a freed batch's memory back to the OS (peak RSS stays bounded)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from logpipe.memory import MALLOC_TUNABLES

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


HUGE_PAGES_PROBE = """
def huge_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("AnonHugePages"):
            return int(line.split()[1])

from logpipe.memory import configure_allocators
applied = configure_allocators()
before = huge_kb()
block = bytearray(64 << 20)  # one batch-sized allocation, written through
for i in range(0, len(block), 4096):
    block[i] = 1
print(applied["malloc_huge_pages"], (huge_kb() - before) // 1024)
"""


def _thp_allowed() -> bool:
    try:
        return "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not _thp_allowed(), reason="glibc's tunable, the kernel's THP")
@pytest.mark.parametrize("tunables", [None, MALLOC_TUNABLES])
def test_the_glibc_tunable_puts_large_blocks_on_huge_pages(tunables):
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    done = subprocess.run([sys.executable, "-c", HUGE_PAGES_PROBE], capture_output=True, text=True, check=True, env=env)
    reported, huge_mb = done.stdout.split()
    assert reported == str(bool(tunables))
    assert (int(huge_mb) >= 32) == bool(tunables), done.stdout


def test_what_starts_logpipe_sets_the_tunable():
    root = Path(__file__).resolve().parents[1]
    assert f"RUN_ENV := GLIBC_TUNABLES={MALLOC_TUNABLES}" in (root / "Makefile").read_text()
    assert f"GLIBC_TUNABLES={MALLOC_TUNABLES}" in (root / "deploy" / "Dockerfile").read_text()
