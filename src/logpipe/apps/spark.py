"""``logpipe spark``: the Spark engine's query, served with health and metrics, until a signal or its failure."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from logpipe.apps.process import open_stage_store, stage_health
from logpipe.auth.tokens import open_registry
from logpipe.codec.ndjson import prepare_decoder
from logpipe.config import Settings
from logpipe.gateway.app import create_store_app
from logpipe.gateway.server import BackgroundServer
from logpipe.processing.spark.job import spark_session, start_query
from logpipe.processing.spark.listener import ProgressListener
from logpipe.warehouse.dimensions import start_sync

log = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    """The query until SIGINT/SIGTERM or its failure; returns the exit code (1 when it died of an exception)."""
    config = settings.spark()
    prepare_decoder()  # the driver normalizes each micro-batch
    store = open_stage_store(settings)
    spark = spark_session(config)
    listener = ProgressListener()
    spark.streams.addListener(listener)
    query = start_query(spark, store, settings.kafka_config(), config, config.source, settings.processor().rules)
    dimensions = start_sync(store, settings.dimensions(), settings.retention_days)  # in the driver, beside the query

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
        if dimensions is not None:
            dimensions.stop()
        server.stop()
        spark.stop()
        store.close()
    return code
