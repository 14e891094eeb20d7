"""`logpipe bench --scenario monitoring-cost`: what each watchdog check and each dashboard panel costs
on stores of 10 million and 100 million rows over the last 24 hours (bench/search.py builds them):
the median and p99 time of each query on both (of RUNS runs), and the medians' ratio beside the rows'
ratio of 10.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from logpipe.bench import search
from logpipe.dashboard.panels import PANELS, PanelRange, panel_sql
from logpipe.warehouse import queries

SIZES = tuple(int(n) for n in os.environ.get("LOGPIPE_BENCH_MONITORING_ROWS", "10000000,100000000").split(","))
RUNS = 20  # p99 of 20 runs: between the slowest two
HOUR_MS = 3_600_000
# the watchdog's SQL checks with their rules' defaults (monitor/rules.yaml)
CHECKS = {
    "error_rate": (queries.ERROR_RATE, {"w": 60, "m": 20}),
    "latency_p99": (queries.LATENCY_P99, {"w": 60, "m": 20}),
    "freshness": (queries.FRESHNESS, {}),
    "dead_letters": (queries.DEAD_LETTERS_PER_S, {"w": 60}),
    "ingest_drop": (queries.INGEST_AGAINST_BASELINE, {"w": 60, "b": 900}),
}


def _timings_ms(store: Any, sql: str, parameters: dict[str, Any]) -> tuple[float, float]:
    """The median and the p99 of RUNS runs, after a first that reads marks and indexes from disk."""
    store.query_rows(sql, parameters)
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        store.query_rows(sql, parameters)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings)), float(np.quantile(timings, 0.99))


def measure(rows: int) -> dict[str, Any]:
    store = search._store(Path(tempfile.mkdtemp(prefix="logpipe-bench-monitoring-")), indexes=True)
    now_ms = int(time.time() * 1000)
    build_s = search.build(store, rows, now_ms)
    stored = search.table_size(store)[0]
    timings = {f"check {name}": _timings_ms(store, queries.in_database(sql, store.database), parameters)
               for name, (sql, parameters) in CHECKS.items()}
    for label, span_ms in (("1 h", HOUR_MS), ("24 h", 24 * HOUR_MS)):
        window = PanelRange(now_ms - span_ms, now_ms)
        for panel in PANELS:
            if panel.source != "metrics":
                timings[f"panel {panel.id} ({label})"] = _timings_ms(store, panel_sql(panel, store.database),
                                                                     window.parameters())
    store.close()
    return {"rows": int(stored), "build_s": round(build_s, 1), "runs": RUNS,
            "ms": {k: round(median, 1) for k, (median, _) in timings.items()},
            "p99_ms": {k: round(p99, 1) for k, (_, p99) in timings.items()}}


def compare(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    rows_ratio = large["rows"] / small["rows"]
    growth = {name: round(large["ms"][name] / max(small["ms"][name], 0.1), 2) for name in small["ms"]}
    return {"sizes": [small, large], "rows_ratio": round(rows_ratio, 2), "time_ratio": growth}
