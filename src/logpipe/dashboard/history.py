"""The pipeline's own counters over the last hour, sampled in-process for the dashboard's live panel:
ingested against inserted events per second, the processor's queue, and Kafka consumer lag."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from logpipe import metrics


def kafka_lag_total() -> float | None:
    samples = [s.value for family in metrics.KAFKA_LAG.collect() for s in family.samples]
    return sum(samples) if samples else None


class PipelineHistory:
    def __init__(self, stats: Callable[[], dict[str, float]], interval_s: float = 2.0, keep_s: float = 3600.0):
        self.stats = stats
        self.interval_s = interval_s
        self.samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=int(keep_s / interval_s))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logpipe-history", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sample(self) -> None:
        current = dict(self.stats())
        lag = kafka_lag_total()
        if lag is not None:
            current["kafka_lag"] = lag
        self.samples.append((time.time(), current))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def rows(self, start_ms: int, end_ms: int) -> list[list]:
        """(t ms, series, value) rows between two instants, as the SQL time series panels return."""
        rows: list[list] = []
        for (before_t, before), (t, now) in itertools.pairwise(self.samples):
            t_ms = int(t * 1000)
            if not start_ms <= t_ms < end_ms:
                continue
            elapsed = max(t - before_t, 1e-6)
            ingested = (now["generated"] + now["accepted"]) - (before["generated"] + before["accepted"])
            rows.append([t_ms, "ingested ev/s", round(ingested / elapsed, 1)])
            rows.append([t_ms, "inserted ev/s", round((now["inserted"] - before["inserted"]) / elapsed, 1)])
            rows.append([t_ms, "queued events", now["queued"]])
            if "kafka_lag" in now:
                rows.append([t_ms, "kafka lag (messages)", now["kafka_lag"]])
        return rows
