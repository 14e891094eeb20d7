"""What the soak scenarios (up-max, up-100k, up-200k) watch beside `logpipe up` as users run it: a
dashboard tab that refreshes every panel every 5 s, and a sampler that writes one line per minute
of the inserted rate, marker freshness, RSS, queue depth and active parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from logpipe import metrics
from logpipe.bench.resources import children, rss_bytes
from logpipe.warehouse import queries

PANEL_REFRESH_S = 5.0


class _Watcher:
    """A daemon thread that runs ``_run`` from ``start(started)`` (a perf_counter reading) to ``stop``."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, started: float) -> _Watcher:
        self._started = started
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)

    def _run(self) -> None:
        raise NotImplementedError


class DashboardTab(_Watcher):
    """An open dashboard: every panel of the last hour fetched every PANEL_REFRESH_S, one after another
    as the page's fetches are, each answer's time kept by the minute it was asked in."""

    def __init__(self, base: str, headers: dict[str, str], period_s: float = 60.0):
        super().__init__("dashboard-tab")
        self.base, self.headers, self.period_s = base, headers, period_s
        self.answers_ms: dict[int, list[float]] = {}
        self.failures = 0

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30, headers=self.headers) as client:
            panels = [p["id"] for p in client.get("/api/panels").json()]
            while not self._stop.is_set():
                began = time.monotonic()
                for panel in panels:
                    asked = time.monotonic()
                    try:
                        ok = client.get(f"/api/panels/{panel}").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if not ok:
                        self.failures += 1
                    minute = int((time.perf_counter() - self._started) // self.period_s)
                    self.answers_ms.setdefault(minute, []).append((time.monotonic() - asked) * 1000)
                self._stop.wait(max(0.0, PANEL_REFRESH_S - (time.monotonic() - began)))


class MinuteSampler(_Watcher):
    """Each minute of the run: rows inserted, the process tree's RSS (its peak over 1 s samples),
    the queue depth and the active parts at the minute's end."""

    def __init__(self, base: str, headers: dict[str, str], pid: int,
                 scrape: Callable[[str], dict[tuple[str, str], float]], period_s: float = 60.0):
        super().__init__("minute-sampler")
        self.base, self.headers, self.pid, self.scrape = base, headers, pid, scrape
        self.period_s = period_s
        self.minutes: list[dict[str, Any]] = []

    def _rss(self) -> int:
        return sum(rss_bytes(pid) for pid in (self.pid, *children(self.pid)))

    def _inserted(self, sample: dict[tuple[str, str], float]) -> float:
        return sample.get((metrics.sample_name(metrics.EVENTS_SENT, "_total"), "clickhouse_sink"), 0.0)

    def _queued(self, sample: dict[tuple[str, str], float]) -> float:
        name = metrics.sample_name(metrics.QUEUE_EVENTS)
        return sum(value for (metric, _), value in sample.items() if metric == name)

    def _parts(self, client: httpx.Client) -> int | None:
        try:
            rows = client.post("/v1/query", json={"sql": queries.ACTIVE_PARTS,
                                                  "parameters": {"db": "analytics"}}).json()["rows"]
            return int(rows[0][0])
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30, headers=self.headers) as client:
            last = self._inserted(self.scrape(self.base))
            peak = 0
            minute = 0
            while not self._stop.wait(min(1.0, self.period_s / 4)):
                peak = max(peak, self._rss())
                if time.perf_counter() - self._started < self.period_s * (minute + 1):
                    continue
                sample = self.scrape(self.base)
                inserted = self._inserted(sample)
                self.minutes.append({"minute": minute + 1,
                                     "inserted_per_s": round((inserted - last) / self.period_s),
                                     "rss_mb": round(peak / 2**20), "queue_events": int(self._queued(sample)),
                                     "active_parts": self._parts(client)})
                last, peak, minute = inserted, 0, minute + 1


def per_minute(minutes: list[dict[str, Any]], freshness: list[tuple[float, float]],
               answers_ms: dict[int, list[float]], period_s: float = 60.0) -> list[dict[str, Any]]:
    """The sampler's minutes with the freshness of the markers sent in each (seconds after the run
    started, seconds to visible) and the dashboard's answer times in each."""
    out = []
    for row in minutes:
        index = row["minute"] - 1
        delays = [delay for sent, delay in freshness if index * period_s <= sent < (index + 1) * period_s]
        answers = answers_ms.get(index, [])
        p50, p99 = (np.quantile(delays, [0.5, 0.99]).tolist() if delays else (None, None))
        out.append({**row, "freshness_p50_s": None if p50 is None else round(p50, 3),
                    "freshness_p99_s": None if p99 is None else round(p99, 3), "markers": len(delays),
                    "panel_p99_ms": round(float(np.quantile(answers, 0.99)), 1) if answers else None})
    return out


def steadiness(minutes: list[dict[str, Any]]) -> float | None:
    """The second half's mean inserted rate over the first half's (the issue's last 5 minutes against
    the first 5 in a 10-minute run)."""
    rates = [m["inserted_per_s"] for m in minutes]
    half = len(rates) // 2
    if half == 0 or not sum(rates[:half]):
        return None
    return round(float(np.mean(rates[-half:]) / np.mean(rates[:half])), 3)
