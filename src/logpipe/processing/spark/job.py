"""The Spark Structured Streaming engine: logs.* from Kafka -> normalize -> ClickHouse, checkpointed.

Per micro-batch, executors normalize each Kafka topic-partition range with the embedded processor's
own ``normalize_partition`` (so both engines produce the same rows) and hand back Arrow IPC blobs;
the driver inserts each with the token ``<query id>:<batch id>:<table>:<topic>:<partition>:<first>-<last>``.
Spark replays a batch after a crash with the same id and offsets (its offset log is written before
the batch runs), so a replayed chunk carries the same token and ClickHouse stores it once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.processing.normalize import normalize_partition
from logpipe.processing.processor import record_freshness
from logpipe.processing.spark.config import SparkConfig
from logpipe.processing.spark.source import SOURCE_NAME, KafkaPythonSource
from logpipe.transport.kafka import KafkaConfig
from logpipe.transport.topics import dlq_topic, subscription_regex
from logpipe.warehouse.remote import arrow_ipc, read_arrow_ipc
from logpipe.warehouse.sink import dead_letter_sink, fact_sink

log = logging.getLogger(__name__)
CONNECTOR_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
CHUNK_SCHEMA = pa.schema([("table", pa.string()), ("topic", pa.string()), ("partition", pa.int32()),
                          ("first_offset", pa.int64()), ("last_offset", pa.int64()), ("rows", pa.int64()),
                          ("payload", pa.binary())])
CHUNK_DDL = ("table string, topic string, partition int, first_offset long, last_offset long, rows long, "
             "payload binary")


def spark_session(config: SparkConfig):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors import logpipe from this env
    builder = (SparkSession.builder.master(config.master).appName("logpipe")
               .config("spark.sql.shuffle.partitions", "2")
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
               "startingOffsets": config.starting_offsets, "failOnDataLoss": "true",
               **{f"kafka.{k}": str(v) for k, v in kafka.properties.items()}}
    if config.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(config.max_offsets_per_trigger)
    if source == "python":
        options["excludePattern"] = dlq_topic(kafka.topic_prefix)
    return reader.options(**options).load()


def normalize_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): group by topic-partition, normalize, ship Arrow IPC blobs."""
    tables = [pa.Table.from_batches([b]) for b in batches if b.num_rows]
    if not tables:
        return
    table = pa.concat_tables(tables).sort_by([("topic", "ascending"), ("partition", "ascending"),
                                              ("offset", "ascending")])
    keys = table.select(["topic", "partition"]).group_by(["topic", "partition"]).aggregate([])
    for topic, partition in zip(keys.column("topic").to_pylist(), keys.column("partition").to_pylist(), strict=True):
        mask = pc.and_(pc.equal(table.column("topic"), topic), pc.equal(table.column("partition"), partition))
        part = table.filter(mask)
        offsets = part.column("offset").to_numpy()
        normalized = normalize_partition(topic, partition, part.column("value").combine_chunks(),
                                         np.asarray(offsets, dtype=np.int64))
        for name, rows in (("dead_letter", normalized.dead_letters), ("fact_log", normalized.facts)):
            if rows.num_rows:
                yield pa.RecordBatch.from_pydict({
                    "table": [name], "topic": [topic], "partition": [partition],
                    "first_offset": [int(offsets[0])], "last_offset": [int(offsets[-1])],
                    "rows": [rows.num_rows], "payload": [arrow_ipc(rows)]}, schema=CHUNK_SCHEMA)


class ForeachBatchSink:
    """foreachBatch: normalized chunks into ClickHouse, each with a replay-stable token.

    Dead letters go before facts, as in the embedded processor's commit order."""

    def __init__(self, store):
        self.store = store
        self.sinks = {"fact_log": fact_sink(store), "dead_letter": dead_letter_sink(store)}
        self.query_id: str | None = None
        self._query_known = threading.Event()

    def bind(self, query_id: str) -> None:
        self.query_id = query_id
        self._query_known.set()

    def __call__(self, batch_df, batch_id: int) -> None:
        self._query_known.wait(120)  # start() returns the id; the first batch may run before that
        chunks = batch_df.mapInArrow(normalize_chunks, CHUNK_DDL).toArrow()
        order = sorted(range(chunks.num_rows), key=lambda i: (chunks["table"][i].as_py() != "dead_letter",
                                                              chunks["topic"][i].as_py(),
                                                              chunks["partition"][i].as_py()))
        for i in order:
            table = chunks["table"][i].as_py()
            rows = read_arrow_ipc(chunks["payload"][i].as_py())
            token = (f"{self.query_id}:{batch_id}:{table}:{chunks['topic'][i].as_py()}:"
                     f"{chunks['partition'][i].as_py()}:{chunks['first_offset'][i].as_py()}-"
                     f"{chunks['last_offset'][i].as_py()}")
            self.sinks[table].write(rows, token)
            if table == "fact_log":
                record_freshness(rows)


def start_query(spark, store, kafka: KafkaConfig, config: SparkConfig, source: str = "auto") -> Any:
    """Start the streaming query; returns it (already bound to its sink)."""
    chosen = resolve_source(spark, source)
    sink = ForeachBatchSink(store)
    query = (kafka_stream(spark, kafka, config, chosen).writeStream
             .queryName("logpipe")
             .foreachBatch(sink)
             .option("checkpointLocation", str(config.checkpoint_dir))
             .trigger(processingTime=f"{config.trigger_s} seconds")
             .start())
    sink.bind(query.id)
    log.info("spark query %s started: source %s, checkpoint %s", query.id, chosen, config.checkpoint_dir)
    return query
