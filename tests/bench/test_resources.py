"""CPU seconds per component and peak RSS, as `logpipe bench` reports them."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time

from logpipe import metrics
from logpipe.bench.resources import ResourceMonitor


def _spin(seconds: float) -> None:
    metrics.name_os_thread()
    _burn_cpu(seconds)


def _burn_cpu(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def test_cpu_is_told_apart_per_named_thread_and_per_process():
    monitor = ResourceMonitor(interval_s=0.05)
    monitor.watch("this process", os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 1.0\n"
                              "buf = bytearray(64 * 2**20)\nwhile time.process_time() < end: pass"])
    monitor.watch("a child", child.pid, pipeline=False)
    monitor.start()
    spinner = threading.Thread(target=_spin, args=(1.0,), name="logpipe-long-named-spinner")
    spinner.start()
    spinner.join()
    child.wait(30)
    usage = monitor.stop()
    # the OS keeps 15 bytes of a thread's name; the report gives the whole one back. Each spun 1 s of
    # CPU; what it used after the last sample before it exited (one interval, more on a busy machine) is not seen
    assert 0.75 <= usage.cpu_s["long-named-spinner"] <= 1.1
    assert 0.75 <= usage.cpu_s["a child"] <= 1.2
    assert usage.peak_rss_mb["a child"] >= 64
    assert usage.pipeline_peak_rss_mb == usage.peak_rss_mb["this process"]  # the child is not the pipeline's


def test_a_logpipe_thread_that_chdb_renames_keeps_its_cpu():
    """chdb names a thread that runs a query "Unknown"; a committer inserting as the run ends is
    still the committer's CPU, not the engine's."""
    monitor = ResourceMonitor(interval_s=0.05)
    monitor.watch("this process", os.getpid())
    monitor.start()
    spun, measured = threading.Event(), threading.Event()

    def insert_like_chdb() -> None:
        metrics.name_os_thread()
        time.sleep(0.5)  # sampled under its own name
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(b"Unknown"), 0, 0, 0)  # what chdb does
        _burn_cpu(0.5)
        spun.set()
        measured.wait(30)  # still running a query, so to speak, when the monitor stops

    thread = threading.Thread(target=insert_like_chdb, name="logpipe-committer")
    thread.start()
    assert spun.wait(30)
    usage = monitor.stop()
    measured.set()
    thread.join()
    assert usage.cpu_s.get("committer", 0.0) >= 0.45  # the 0.5 s it spun under chdb's name, to the tick


def test_a_process_watched_before_the_start_counts_only_from_the_start():
    """A server watched as it starts and warms up: its start-up is not the scenario's CPU."""
    monitor = ResourceMonitor(interval_s=0.05)
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nend = time.process_time() + 1.0\n"
                              "while time.process_time() < end: pass\nprint('warm', flush=True)\n"
                              "end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"],
                             stdout=subprocess.PIPE, text=True)
    monitor.watch("a server", child.pid, pipeline=False)
    assert child.stdout.readline() == "warm\n"
    monitor.start()
    child.wait(30)
    usage = monitor.stop()
    assert 0.3 <= usage.cpu_s["a server"] <= 0.75


def test_cpu_counted_from_a_later_moment_leaves_out_what_came_before_it():
    """drain-spark times its rate from the end of the first micro-batch: the CPU before it, of a
    process still running and of one already gone, is not that window's."""
    monitor = ResourceMonitor(interval_s=0.05)
    burn = "import sys, time\nend = time.process_time() + float(sys.argv[1])\nwhile time.process_time() < end: pass"
    early = subprocess.Popen([sys.executable, "-c", burn, "0.6"])
    steady = subprocess.Popen([sys.executable, "-c", burn + "\nprint('half', flush=True)\n"
                               "end = time.process_time() + 0.5\nwhile time.process_time() < end: pass", "0.8"],
                              stdout=subprocess.PIPE, text=True)
    monitor.watch("gone early", early.pid, pipeline=False)
    monitor.watch("steady", steady.pid, pipeline=False)
    monitor.start()
    early.wait(30)
    time.sleep(0.2)  # sampled after its last CPU
    assert steady.stdout.readline() == "half\n"
    monitor.count_cpu_from_now()
    steady.wait(30)
    usage = monitor.stop()
    assert usage.cpu_s["gone early"] == 0.0
    assert 0.25 <= usage.cpu_s["steady"] <= 0.7  # its last 0.5 s, not the 0.8 s before
