"""The Spark Structured Streaming engine: logs.* from Kafka -> normalize -> ClickHouse, checkpointed.

Per micro-batch, executors read the Kafka offset ranges; the driver normalizes each topic-partition
with the embedded processor's own ``normalize_messages`` (so both engines produce the same rows)
and inserts chunks with the token ``<query id>:<batch id>:<table>:<chunk>``. Spark replays a batch
after a crash with the same id and offsets (its offset log is written before the batch runs), so a
replayed chunk carries the same token and ClickHouse stores it once.

Normalizing on the driver measured faster than on executors (mapInArrow) in local mode, where
the extra Python round trip costs more than it spreads.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import pyarrow as pa

from logpipe.processing.normalize import normalize_messages
from logpipe.processing.processor import record_freshness
from logpipe.processing.spark.config import SparkConfig
from logpipe.processing.spark.source import SOURCE_NAME, KafkaPythonSource
from logpipe.transport.kafka import KafkaConfig
from logpipe.transport.topics import dlq_topic, subscription_regex
from logpipe.transport.wire import prepare_decoder
from logpipe.warehouse.sink import dead_letter_sink, fact_sink

log = logging.getLogger(__name__)
CONNECTOR_CLASS = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


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


def normalize_batch(raw: pa.Table) -> tuple[pa.Table | None, pa.Table | None]:
    """A micro-batch of Kafka rows to (facts, dead letters), in topic-partition-offset order so that
    a replayed batch gives the same rows in the same order."""
    if raw.num_rows == 0:
        return None, None
    raw = raw.sort_by([("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")])
    normalized = normalize_messages(raw.column("topic").combine_chunks(), raw.column("partition").to_numpy(),
                                    raw.column("offset").to_numpy(), raw.column("value").combine_chunks())
    return normalized.facts, normalized.dead_letters


class ForeachBatchSink:
    """foreachBatch: Kafka rows -> normalized -> ClickHouse, in chunks whose tokens survive a replay.

    Executors read Kafka in parallel; the driver normalizes (the same ``normalize_messages`` as the
    embedded processor) and inserts. Dead letters go before facts, as in the embedded commit order."""

    def __init__(self, store, chunk_rows: int = 500_000):
        self.store = store
        self.chunk_rows = chunk_rows
        self.sinks = {"fact_log": fact_sink(store), "dead_letter": dead_letter_sink(store)}
        self.query_id: str | None = None
        self._query_known = threading.Event()

    def bind(self, query_id: str) -> None:
        self.query_id = query_id
        self._query_known.set()

    def __call__(self, batch_df, batch_id: int) -> None:
        self._query_known.wait(120)  # start() returns the id; the first batch may run before that
        raw = batch_df.select("topic", "partition", "offset", "value").toArrow()
        facts, dead = normalize_batch(raw)
        for table, rows in (("dead_letter", dead), ("fact_log", facts)):
            if rows is None:
                continue
            for chunk, start in enumerate(range(0, rows.num_rows, self.chunk_rows)):
                part = rows.slice(start, self.chunk_rows)
                self.sinks[table].write(part, f"{self.query_id}:{batch_id}:{table}:{chunk}")
                if table == "fact_log":
                    record_freshness(part)


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


def run(settings) -> int:
    """``logpipe spark``: the query until SIGINT/SIGTERM or its failure; returns the exit code."""
    import signal

    from logpipe.auth.tokens import open_registry
    from logpipe.gateway.app import create_store_app
    from logpipe.gateway.server import BackgroundServer
    from logpipe.processing.spark.listener import ProgressListener
    from logpipe.processing.stage import open_stage_store, stage_health

    config = settings.spark()
    prepare_decoder()  # the driver normalizes each micro-batch
    store = open_stage_store(settings)
    spark = spark_session(config)
    listener = ProgressListener()
    spark.streams.addListener(listener)
    query = start_query(spark, store, settings.kafka_config(), config, config.source)

    def health() -> dict[str, Any]:
        return stage_health(store, "spark_query", query.isActive, id=query.id, failure=listener.failure)

    tokens, _ = open_registry(settings.auth())
    server = BackgroundServer(create_store_app(store, health, tokens), settings.http_host,
                              settings.process_port).start()
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    code = 0
    try:
        while not stopping.wait(0.5):
            if not query.isActive:
                code = 1 if query.exception() is not None else 0
                break
    finally:
        if query.isActive:
            log.info("stopping the spark query (the batch in flight is replayed on restart)")
            query.stop()
        server.stop()
        spark.stop()
        store.close()
    return code
