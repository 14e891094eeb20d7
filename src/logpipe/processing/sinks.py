"""The sinks of the engine contract (``contract.Sink``): ClickHouse tables, and Kafka's dead-letter topic."""

from __future__ import annotations

import time

import pyarrow as pa

from logpipe import metrics
from logpipe.processing.contract import SinkError
from logpipe.transport.kafka import KafkaProducerTransport
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.errors import classify


class ClickHouseSink:
    """A table of the store. Delivery: effectively once. Each batch is written with an
    insert_deduplication_token, so a retry with the same token after a write that did land stores nothing."""

    def __init__(self, store: Warehouse, table: str, name: str):
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
        except Exception as exc:
            error = classify(exc)
            metrics.EVENTS_ERRORS.labels(component=self.name).inc(batch.num_rows)
            raise SinkError(str(error), error.retryable, error.code) from exc
        metrics.WRITE_SECONDS.labels(component=self.name).observe(time.perf_counter() - started)
        metrics.BATCH_ROWS.labels(component=self.name).observe(batch.num_rows)
        metrics.EVENTS_SENT.labels(component=self.name).inc(batch.num_rows)
        metrics.BYTES_RECEIVED.labels(component=self.name).inc(batch.nbytes)  # Arrow bytes written


def fact_sink(store: Warehouse) -> ClickHouseSink:
    return ClickHouseSink(store, "fact_log", "clickhouse_sink")


def dead_letter_sink(store: Warehouse) -> ClickHouseSink:
    return ClickHouseSink(store, "dead_letter", "dead_letter_sink")


class DeadLetterTopicSink:
    """Kafka's dead-letter topic (``logs.dlq``): each dead letter's raw record as a message, with the
    headers ``error``, ``origin_topic``, ``origin_partition`` and ``origin_offset``. Delivery: at least
    once (the producer is idempotent within a session; a retried batch is produced again)."""

    name = "dlq_topic"

    def __init__(self, producer: KafkaProducerTransport, topic: str, timeout_s: float = 30.0):
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def write(self, batch: pa.Table, token: str) -> None:
        if batch.num_rows == 0:
            return
        rows = batch.select(["topic", "partition", "offset", "reason", "raw"]).to_pylist()
        headers = [[("error", r["reason"].encode()), ("origin_topic", r["topic"].encode()),
                    ("origin_partition", str(r["partition"]).encode()), ("origin_offset", str(r["offset"]).encode())]
                   for r in rows]
        try:
            self.producer.send_raw([r["raw"].encode() for r in rows], [self.topic] * len(rows), [None] * len(rows),
                                   headers).result(timeout=self.timeout_s)
        except Exception as exc:  # undelivered: the broker may take it later
            raise SinkError(f"dead letters not delivered to {self.topic}: {exc}", True) from exc
