"""What `FINAL` on a ReplacingMergeTree keyed by event_id would cost the panels (issue 19's second way to
idempotent retries), against the plain MergeTree logpipe uses: the same rows, the same queries.

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python bench/experiments/replacing_final_cost.py [rows]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.store import Store

QUERIES = {
    "status codes over 1 h": "SELECT status, count() FROM {table}{final} WHERE ts >= now() - INTERVAL 1 HOUR "
                             "GROUP BY status ORDER BY status",
    "error rate per service, 24 h": "SELECT service, countIf(status >= 500) / count() FROM {table}{final} "
                                    "WHERE ts >= now() - INTERVAL 1 DAY GROUP BY service",
    "top error messages, 24 h": "SELECT service, substring(message, 1, 120) AS m, count() AS c FROM {table}{final} "
                                "WHERE ts >= now() - INTERVAL 1 DAY AND level IN ('ERROR', 'FATAL') "
                                "GROUP BY service, m ORDER BY c DESC LIMIT 10",
}


def main(rows: int) -> None:
    store = Store(WarehouseConfig(data_dir=Path(tempfile.mkdtemp(prefix="logpipe-final-")), database="x"))
    store.apply_schema()
    store.command("CREATE TABLE x.replacing AS x.fact_log ENGINE = ReplacingMergeTree ORDER BY (service, ts, event_id)")
    generator = TrafficGenerator(seed=1)
    now = time.time()
    batch = 200_000
    for start in range(0, rows, batch):
        table = generator.generate(batch, now - 86_000 + start * 86_000 / rows,
                                   now - 86_000 + (start + batch) * 86_000 / rows)
        facts = normalize_ndjson(encode_ndjson(table), Provenance("bench")).facts
        store.insert("fact_log", facts)
        store.insert("replacing", facts)
    print(f"{rows:,} rows in each table")
    for name, sql in QUERIES.items():
        timings = {}
        for label, table, final in (("MergeTree", "x.fact_log", ""), ("Replacing FINAL", "x.replacing", " FINAL")):
            samples = []
            for _ in range(7):
                started = time.perf_counter()
                store.query_rows(sql.format(table=table, final=final))
                samples.append(time.perf_counter() - started)
            timings[label] = statistics.median(samples)
        ratio = timings["Replacing FINAL"] / timings["MergeTree"]
        print(f"| {name} | {timings['MergeTree'] * 1000:.0f} ms | {timings['Replacing FINAL'] * 1000:.0f} ms | "
              f"{ratio:.1f}x |")
    store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000)
