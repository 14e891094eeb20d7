"""ClickHouse sinks. Delivery guarantee: effectively once. A batch is written with an
insert_deduplication_token, so the checkpoint's retries and a replay after a crash store it once."""

from __future__ import annotations

import time

import pyarrow as pa

from logpipe import metrics
from logpipe.warehouse.store import Store


class ClickHouseSink:
    def __init__(self, store: Store, table: str, name: str):
        self.store = store
        self.table = table
        self.name = name
        metrics.register_component(name)
        metrics.WRITE_SECONDS.labels(component=name)
        metrics.BATCH_ROWS.labels(component=name)

    def write(self, batch: pa.Table, token: str) -> None:
        if batch.num_rows == 0:
            return
        started = time.perf_counter()
        try:
            self.store.insert(self.table, batch, token)
        except Exception:
            metrics.EVENTS_ERRORS.labels(component=self.name).inc(batch.num_rows)
            raise
        metrics.WRITE_SECONDS.labels(component=self.name).observe(time.perf_counter() - started)
        metrics.BATCH_ROWS.labels(component=self.name).observe(batch.num_rows)
        metrics.EVENTS_SENT.labels(component=self.name).inc(batch.num_rows)
        metrics.BYTES_RECEIVED.labels(component=self.name).inc(batch.nbytes)  # Arrow bytes written


def fact_sink(store: Store) -> ClickHouseSink:
    return ClickHouseSink(store, "fact_log", "clickhouse_sink")


def dead_letter_sink(store: Store) -> ClickHouseSink:
    return ClickHouseSink(store, "dead_letter", "dead_letter_sink")
