"""CPU seconds and peak RSS per component, read from /proc while a scenario runs.

Inside one process the components are threads: logpipe names its threads in the OS
(``lp:processor``, by ``metrics.name_os_thread``), librdkafka's are ``rdk:*``, and the rest of the non-Python
threads belong to the embedded ClickHouse engine. Other processes (a broker, load
generators, a Spark JVM) count as one component each.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from logpipe.metrics import OS_THREAD_NAMES

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _cpu_s(stat_path: Path) -> tuple[str, float]:
    """(thread or process name, user + system seconds) from a /proc stat file."""
    text = stat_path.read_text()
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return name, (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError):
        return 0


def _component(thread_name: str, process_name: str) -> str:
    if thread_name.startswith("rdk:"):
        return "librdkafka"
    if thread_name in (process_name, "python", "python3") or thread_name.startswith(("python", "pymain")):
        return "python (main and others)"
    if thread_name.startswith("lp:"):  # a logpipe thread, named by metrics.name_os_thread
        return OS_THREAD_NAMES.get(thread_name, thread_name.removeprefix("lp:"))
    return "ClickHouse engine (chdb)"


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    return children


def children(pid: int) -> list[int]:
    """The live direct children of ``pid`` (the JVM of a PySpark driver)."""
    return _children_by_parent().get(pid, [])


def _descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    children = _children_by_parent()
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


@dataclass
class ResourceMonitor:
    """Samples RSS every ``interval_s`` and, at ``stop``, the CPU each component used since ``start``."""

    interval_s: float = 0.1
    processes: dict[str, int] = field(default_factory=dict)
    pipeline: set[str] = field(default_factory=set)  # the processes whose memory the pipeline needs
    _peak: dict[str, int] = field(default_factory=dict)
    _cpu_start: dict[int, float] = field(default_factory=dict)  # thread id: CPU seconds at start
    _thread_cpu: dict[int, tuple[str, float]] = field(default_factory=dict)  # thread id: last name and seconds
    trees: set[str] = field(default_factory=set)  # processes counted with their descendants
    _process_cpu: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)  # (start, last seen)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the sampler against count_cpu_from_now

    def watch(self, name: str, pid: int, pipeline: bool = True, with_descendants: bool = False) -> None:
        """Count a process as a component of its own; this process's threads are counted one by one
        instead. ``pipeline`` False for load generators and brokers; ``with_descendants`` adds the
        processes it starts while the scenario runs (a Spark JVM and its Python workers)."""
        self.processes[name] = pid
        if with_descendants:
            self.trees.add(name)
        if pipeline:
            self.pipeline.add(name)
        if pid != os.getpid():
            self._sample_process(name, first=True)

    def start(self) -> None:
        """CPU counts from here: a process watched earlier (while it started or warmed up) from now,
        and the processes it starts later from their first moment."""
        self.count_cpu_from_now()
        self._thread = threading.Thread(target=self._run, name="logpipe-bench-rss", daemon=True)
        self._thread.start()

    def count_cpu_from_now(self) -> None:
        """CPU counts from here, while peak RSS keeps what was sampled since ``start``: for a scenario
        whose rate is timed from a later moment (the end of a first micro-batch), so that its cores
        busy are CPU and time of the same window. A process gone by now counts nothing."""
        own = os.getpid()
        with self._lock:
            if own in self.processes.values():
                self._sample_threads()
                self._cpu_start.update({tid: seconds for tid, (_name, seconds) in self._thread_cpu.items()})
            for name, pid in self.processes.items():
                if pid != own:
                    self._sample_process(name)
            self._process_cpu = {key: (last, last) for key, (_start, last) in self._process_cpu.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                for name, pid in list(self.processes.items()):
                    if pid == os.getpid():
                        self._peak[name] = max(self._peak.get(name, 0), rss_bytes(pid))
                        self._sample_threads()
                    else:
                        self._sample_process(name)

    def _sample_threads(self) -> None:
        """This process's threads, kept after they exit (a thread's CPU leaves /proc with it). A logpipe
        thread keeps its name while chdb runs a query on it and calls it "Unknown" (a committer inserting
        when the scenario ends would count as the engine's otherwise)."""
        for tid, name, seconds in self._threads(os.getpid()):
            known = self._thread_cpu.get(tid, (name, 0.0))[0]
            self._thread_cpu[tid] = (known if known.startswith("lp:") else name, seconds)

    def _sample_process(self, name: str, first: bool = False) -> None:
        root = self.processes[name]
        pids = [root, *_descendants(root)] if name in self.trees else [root]
        self._peak[name] = max(self._peak.get(name, 0), sum(rss_bytes(pid) for pid in pids))
        for pid in pids:
            try:
                seconds = _cpu_s(Path(f"/proc/{pid}/stat"))[1]
            except (OSError, ValueError):
                continue  # exited: keep the last value seen
            key = (name, pid)
            # a process first seen mid-run counts from zero; the root only from when it was watched
            start = seconds if first else self._process_cpu.get(key, (0.0, 0.0))[0]
            self._process_cpu[key] = (start, seconds)

    @staticmethod
    def _threads(pid: int) -> list[tuple[int, str, float]]:
        threads = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                name, seconds = _cpu_s(task / "stat")
            except (OSError, ValueError):
                continue
            threads.append((int(task.name), name, seconds))
        return threads

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        own = os.getpid()
        cpu: dict[str, float] = {}
        if own in self.processes.values():
            process_name = _cpu_s(Path(f"/proc/{own}/stat"))[0]
            self._sample_threads()
            for tid, (name, seconds) in self._thread_cpu.items():
                component = _component(name, process_name)
                cpu[component] = cpu.get(component, 0.0) + seconds - self._cpu_start.get(tid, 0.0)
        for (name, _pid), (start, last) in self._process_cpu.items():
            cpu[name] = cpu.get(name, 0.0) + last - start
        peak = {name: round(value / 2**20, 1) for name, value in self._peak.items()}
        return Usage(peak, {name: round(seconds, 2) for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])},
                     round(sum(peak.get(name, 0.0) for name in self.pipeline), 1))


@dataclass
class Usage:
    peak_rss_mb: dict[str, float]  # per process, sampled while the scenario ran
    cpu_s: dict[str, float]  # per component
    pipeline_peak_rss_mb: float  # the pipeline's processes together
