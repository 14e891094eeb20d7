"""What both Python processors share around the contract: a committer thread, and freshness."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from logpipe import metrics


class Committer:
    """Runs ``commit`` on each sealed batch on a thread of its own, in the order they are handed
    over, while the caller prepares the next; at most one waits, so a slow store holds the caller
    back instead of piling batches up in memory. Both processors commit through one."""

    _CLOSE = object()

    def __init__(self, name: str, commit: Callable[[Any], None]):
        self._commit = commit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Committer:
        self._thread.start()
        return self

    def put(self, sealed: Any) -> None:
        self._queue.put(sealed)

    @property
    def busy(self) -> bool:
        """A batch is being committed or waits to be."""
        return self._queue.unfinished_tasks > 0

    def drain(self) -> None:
        """Return once every batch handed over is committed."""
        self._queue.join()

    def close(self) -> None:
        """Commit what was handed over, then end the thread."""
        self._queue.put(self._CLOSE)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        metrics.name_os_thread()
        while (sealed := self._queue.get()) is not self._CLOSE:
            try:
                self._commit(sealed)
            finally:
                self._queue.task_done()
        self._queue.task_done()


def record_freshness(facts: pa.Table) -> None:
    """Now minus the newest event time just written."""
    if facts.num_rows:
        newest = facts.column("ts").to_numpy().max().astype("int64") / 1000.0
        metrics.FRESHNESS_SECONDS.set(max(0.0, time.time() - newest))
