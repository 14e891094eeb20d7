"""The Spark Structured Streaming engine: logs.* from Kafka -> normalize -> ClickHouse, checkpointed.

Per micro-batch, executors read the Kafka offset ranges; the driver normalizes each topic-partition
with the embedded processor's own ``normalize_messages`` (so the engines produce the same rows) and
writes them by the engine contract (``contract.write_batch``: dead letters, then facts, a permanent
rejection split down to the refused rows), in chunks whose token is ``<query id>:<batch id>:<chunk>``.
Returning from ``foreachBatch`` is the acknowledgement: Spark then writes its checkpoint. Spark replays
a batch after a crash with the same id and offsets (its offset log is written before the batch runs),
so a replayed chunk carries the same token and ClickHouse stores it once.

Normalizing on the driver measured faster than on executors (mapInArrow) in local mode, where
the extra Python round trip costs more than it spreads.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import pyarrow as pa

from logpipe.events import DEAD_LETTER_SCHEMA, FACT_SCHEMA
from logpipe.processing.committer import record_freshness
from logpipe.processing.contract import RetryPolicy, Sinks, write_batch
from logpipe.processing.normalize import Rules, normalize_messages
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.processing.spark.config import SparkConfig
from logpipe.processing.spark.source import SOURCE_NAME, KafkaPythonSource
from logpipe.transport.kafka import KafkaConfig
from logpipe.transport.topics import dlq_topic, named_by_headers, subscription_regex
from logpipe.warehouse.base import Warehouse

log = logging.getLogger(__name__)
CONNECTOR_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


def spark_session(config: SparkConfig):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors import logpipe from this env
    builder = (SparkSession.builder.master(config.master).appName("logpipe")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.memory", config.driver_memory)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", str(config.ui).lower())
               .config("spark.sql.streaming.stopTimeout", "60s"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark.dataSource.register(KafkaPythonSource)
    return spark


def connector_available(spark) -> bool:
    try:
        spark._jvm.java.lang.Class.forName(CONNECTOR_CLASS)
        return True
    except Exception:
        return False


def resolve_source(spark, requested: str) -> str:
    if requested == "auto":
        return "kafka" if connector_available(spark) else "python"
    if requested == "kafka" and not connector_available(spark):
        raise RuntimeError("--source kafka needs Spark's Kafka connector (spark-sql-kafka-0-10) on the classpath; "
                           "use --source python to read through confluent-kafka")
    return requested


def kafka_stream(spark, kafka: KafkaConfig, config: SparkConfig, source: str):
    """A streaming DataFrame with the columns of Spark's Kafka source, from either reader."""
    reader = spark.readStream.format("kafka" if source == "kafka" else SOURCE_NAME)
    options = {"kafka.bootstrap.servers": kafka.bootstrap, "subscribePattern": subscription_regex(kafka.topic_prefix),
               "startingOffsets": config.starting_offsets, "failOnDataLoss": "true", "includeHeaders": "true",
               **{f"kafka.{k}": str(v) for k, v in kafka.properties.items()}}
    if config.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(config.max_offsets_per_trigger)
    if source == "python":
        options["excludePattern"] = dlq_topic(kafka.topic_prefix)
        # a task per core: each starts a consumer, so more tasks than cores only queue up more start-ups
        options["readTasks"] = str(spark.sparkContext.defaultParallelism)
    return reader.options(**options).load()


def _headers(raw: pa.Table) -> list[list[tuple[str, bytes]] | None] | None:
    """Each row's Kafka headers as (key, value) pairs; None when the rows carry none (a reader
    without includeHeaders, or messages without headers)."""
    if "headers" not in raw.column_names or raw.column("headers").null_count == raw.num_rows:
        return None
    return [None if h is None else [(pair["key"], pair["value"]) for pair in h]
            for h in raw.column("headers").to_pylist()]


def _in_offset_order(raw: pa.Table) -> pa.Table:
    """A micro-batch's Kafka rows in topic-partition-offset order, so that a replayed batch, whatever
    order Spark hands its rows in, is cut into the same chunks with the same rows."""
    return raw.sort_by([("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")])


def _normalize_sorted(raw: pa.Table, rules: Rules) -> tuple[pa.Table, pa.Table]:
    """Kafka rows already in offset order to (facts, dead letters)."""
    if raw.num_rows == 0:
        return FACT_SCHEMA.empty_table(), DEAD_LETTER_SCHEMA.empty_table()
    senders, sources, refusals = named_by_headers(_headers(raw))
    normalized = normalize_messages(raw.column("topic").combine_chunks(), raw.column("partition").to_numpy(),
                                    raw.column("offset").to_numpy(), raw.column("value").combine_chunks(),
                                    rules=rules, senders=senders, sources=sources, refusals=refusals)
    return normalized.facts, normalized.dead_letters


class ForeachBatchSink:
    """foreachBatch: Kafka rows -> normalized -> written by the contract, in chunks whose tokens survive a
    replay. Executors read Kafka in parallel; the driver normalizes (the same ``normalize_messages`` as
    the Python engines) and writes. The micro-batch is cut, in offset order, into chunks of
    ``chunk_rows`` Kafka rows (the same chunks on a replay, so the same tokens), and one chunk is
    written on a writer thread while the next is normalized: the store's insert runs outside the
    interpreter lock, so normalizing and inserting share the cores that the executors leave idle
    while the driver works. Chunks are written in order, one at a time, and the call returns (Spark's
    acknowledgement) only once every chunk is stored. A write still failing after ``give_up_s`` fails
    the query, which its restart replays from the checkpoint."""

    def __init__(self, store: Warehouse, rules: Rules = Rules(), chunk_rows: int = 100_000,
                 policy: RetryPolicy = RetryPolicy(), give_up_s: float = 300.0):
        self.store = store
        self.rules = rules
        self.chunk_rows = chunk_rows
        self.policy = policy
        self.give_up_s = give_up_s
        self.sinks = Sinks(fact_sink(store), [dead_letter_sink(store)])
        self.query_id: str | None = None
        self._query_known = threading.Event()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logpipe-spark-writer")

    def bind(self, query_id: str) -> None:
        self.query_id = query_id
        self._query_known.set()

    def __call__(self, batch_df, batch_id: int) -> None:
        self._query_known.wait(120)  # start() returns the id; the first batch may run before that
        raw = _in_offset_order(batch_df.select("topic", "partition", "offset", "value", "headers").toArrow())
        give_up_at = time.monotonic() + self.give_up_s
        writing: Future | None = None
        try:
            for chunk, start in enumerate(range(0, raw.num_rows, self.chunk_rows)):
                facts, dead = _normalize_sorted(raw.slice(start, self.chunk_rows), self.rules)
                if writing is not None:
                    writing.result()  # the chunk before is stored before this one is written
                writing = self._writer.submit(self._write, facts, dead, f"{self.query_id}:{batch_id}:{chunk}",
                                              give_up_at)
            if writing is not None:
                writing.result()
        except BaseException:
            if writing is not None:
                wait([writing])  # nothing of this batch is written once the call has returned
            raise

    def _write(self, facts: pa.Table, dead: pa.Table, token: str, give_up_at: float) -> None:
        write_batch(facts, dead, token, self.sinks, self.policy, give_up_at)
        record_freshness(facts)


def start_query(spark, store: Warehouse, kafka: KafkaConfig, config: SparkConfig, source: str = "auto",
                rules: Rules = Rules()) -> Any:
    """Start the streaming query; returns it (already bound to its sink)."""
    chosen = resolve_source(spark, source)
    sink = ForeachBatchSink(store, rules, give_up_s=config.write_give_up_s)
    query = (kafka_stream(spark, kafka, config, chosen).writeStream
             .queryName("logpipe")
             .foreachBatch(sink)
             .option("checkpointLocation", str(config.checkpoint_dir))
             .trigger(processingTime=f"{config.trigger_s} seconds")
             .start())
    sink.bind(query.id)
    log.info("spark query %s started: source %s, checkpoint %s", query.id, chosen, config.checkpoint_dir)
    return query
