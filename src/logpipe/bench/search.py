"""`logpipe bench --scenario search`: the logs page's queries on a store of 50 million simulated rows
over the last 24 hours, through the code the page runs (``LogSearch.newest_first`` in the sandbox),
and what the search indexes cost the insert ceiling, with and without them, in the same run.

The store: 1,000,000 events from the simulator, normalized as ingest does, then copied inside
ClickHouse with new event and trace ids and times spread over the day, until it holds ``rows``; each
is stamped as ingested half a second after its event time, as a live pipeline stores it.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.codec.ndjson import encode_ndjson
from logpipe.dashboard.search import LogSearch
from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.warehouse import queries

ROWS = int(os.environ.get("LOGPIPE_BENCH_SEARCH_ROWS", 50_000_000))
SEED_ROWS = 1_000_000
DAY_MS = 86_400_000
ROUNDS = 40  # queries of each kind: p99 of 40 is their slowest but one
TARGETS_MS = {"trace_id lookup": 100, "two-word message search": 500, "first page of a filtered view": 200}
# words of the simulator's messages, from rare (a stack trace's) to common (a request's outcome)
WORD_PAIRS = (("psp", "declined"), ("inventory", "timeout"), ("ledger", "write"), ("smtp", "unavailable"),
              ("request", "failed"), ("db", "deadlock"), ("token", "store"), ("push", "gateway"))
FILTERED_VIEWS = ({"service": "payment", "level": "ERROR"}, {"service": "order", "status_class": 5},
                  {"status_class": 4}, {"level": "WARN", "kind": "request"}, {"service": "auth"})


def _store(data_dir: Path, indexes: bool) -> Any:
    from logpipe.warehouse.config import WarehouseConfig
    from logpipe.warehouse.store import Store

    store = Store(WarehouseConfig(data_dir=data_dir))
    store.apply_schema()
    if not indexes:
        for name in queries.SEARCH_INDEXES:
            store.command(queries.DROP_SEARCH_INDEX.format(db=store.database, name=name))
        for name in queries.SEARCH_VIEWS:
            store.command(queries.DROP_SEARCH_VIEW.format(db=store.database, name=name))
    return store


def table_size(store: Any, table: str = "fact_log") -> tuple[int, int, int, int]:
    """A table's active rows, parts, bytes on disk and bytes of skip indexes."""
    return store.query_rows(queries.SEARCH_BENCH_STORE, {"db": store.database, "table": table})[1][0]


def build(store: Any, rows: int, now_ms: int) -> float:
    """Fill the store; returns the seconds it took."""
    started = time.perf_counter()
    generator = TrafficGenerator(seed=5)
    chunk = min(200_000, rows)
    chunks = max(1, min(SEED_ROWS, rows) // chunk)
    for i in range(chunks):
        start_s = (now_ms - DAY_MS) / 1000 + i * DAY_MS / 1000 / chunks
        table = generator.generate(chunk, start_s, start_s + DAY_MS / 1000 / chunks)
        facts = normalize_ndjson(encode_ndjson(table), Provenance("simulator")).facts
        ingested = pc.add(facts.column("ts").cast(pa.int64()), 500).cast(facts.schema.field("ingest_ts").type)
        facts = facts.set_column(facts.schema.get_field_index("ingest_ts"), "ingest_ts", ingested)
        store.insert("fact_log", facts, f"seed-{i}")
    seeded = table_size(store)[0]
    for k in range(1, max(1, -(-rows // seeded))):
        store.query_rows(queries.in_database(queries.SEARCH_BENCH_COPY, store.database),
                         {"k": k, "now": now_ms, "day": DAY_MS}, readonly=False)
    return time.perf_counter() - started


def _timed(store: Any, search: LogSearch) -> tuple[float, int]:
    def run(sql: str, parameters: dict[str, Any]) -> list:
        return store.query_limited(queries.in_database(sql, store.database), parameters, 30.0)[1]

    started = time.perf_counter()
    rows = search.newest_first(run)
    return (time.perf_counter() - started) * 1000, len(rows)


def measure_queries(store: Any, now_ms: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(7)
    day = (now_ms - DAY_MS, now_ms + 60_000)
    traces = [t for (t,) in store.query_rows(queries.in_database(queries.SEARCH_BENCH_TRACES, store.database),
                                             {"n": ROUNDS})[1]]
    cases = {
        "trace_id lookup": [LogSearch(*day, trace_id=t) for t in traces],
        "two-word message search": [LogSearch(*day, text=" ".join(rng.choice(WORD_PAIRS))) for _ in range(ROUNDS)],
        "first page of a filtered view": [LogSearch(*day, **rng.choice(FILTERED_VIEWS)) for _ in range(ROUNDS)],
    }
    results = {}
    for name, searches in cases.items():
        _timed(store, searches[0])  # the first of a kind reads its marks and indexes from disk
        timings = [_timed(store, search) for search in searches]
        ms = [t for t, _ in timings]
        results[name] = {"p50_ms": round(float(np.quantile(ms, 0.5)), 1),
                         "p99_ms": round(float(np.quantile(ms, 0.99)), 1), "max_ms": round(max(ms), 1),
                         "queries": len(ms), "rows_found_min": min(n for _, n in timings),
                         "target_p99_ms": TARGETS_MS[name]}
    return results


def insert_ceiling(indexes: bool, batches: int = 10) -> float:
    """Normalized 200,000-row batches inserted back to back into a fresh store: rows per second."""
    store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-search-ceiling-")), indexes)
    generator = TrafficGenerator(seed=11)
    now = time.time()
    tables = [normalize_ndjson(encode_ndjson(generator.generate(200_000, now - 1, now)), Provenance("bench")).facts
              for _ in range(3)]
    store.insert("fact_log", tables[0], f"warm-up-{time.time_ns()}")
    busy = 0.0
    for i in range(batches):
        started = time.perf_counter()
        store.insert("fact_log", tables[i % 3], f"ceiling-{time.time_ns()}-{i}")
        busy += time.perf_counter() - started
    store.close()
    return batches * 200_000 / busy


def run_store(rows: int = ROWS) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-search-")), indexes=True)
    build_s = build(store, rows, now_ms)
    stored, parts, disk, index_bytes = table_size(store)
    trace_table = table_size(store, "fact_log_trace")[2]
    results = measure_queries(store, now_ms)
    store.close()
    return {"rows": int(stored), "parts": int(parts), "build_s": round(build_s, 1), "disk_mb": round(disk / 1e6),
            "index_mb": round(index_bytes / 1e6), "trace_table_mb": round(trace_table / 1e6), "queries": results}
