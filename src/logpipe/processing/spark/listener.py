"""Spark query progress as Prometheus metrics and JSON log lines; termination with its exception."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pyspark.sql.streaming import StreamingQueryListener

from logpipe import metrics

log = logging.getLogger("logpipe.spark.progress")
COMPONENT = "spark_query"


def offsets_behind(sources: list[dict[str, Any]]) -> int:
    """Sum over partitions of latest minus end offset, for sources that report both."""
    behind = 0
    for source in sources:
        latest, end = source.get("latestOffset"), source.get("endOffset")
        latest = orjson.loads(latest) if isinstance(latest, str) else latest
        end = orjson.loads(end) if isinstance(end, str) else end
        if not isinstance(latest, dict) or not isinstance(end, dict):
            continue
        for topic, partitions in latest.items():
            if not isinstance(partitions, dict):
                continue
            for partition, offset in partitions.items():
                behind += max(0, int(offset) - int(end.get(topic, {}).get(partition, 0)))
    return behind


class ProgressListener(StreamingQueryListener):
    def __init__(self) -> None:
        self.failure: str | None = None
        metrics.register_component(COMPONENT)

    def onQueryStarted(self, event) -> None:
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(1)
        log.info(orjson.dumps({"event": "spark_query_started", "id": str(event.id), "run_id": str(event.runId),
                               "name": event.name}).decode())

    def onQueryProgress(self, event) -> None:
        progress = orjson.loads(event.progress.json)
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution", 0)
        behind = offsets_behind(progress.get("sources") or [])
        metrics.SPARK_INPUT_ROWS_PER_SECOND.set(progress.get("inputRowsPerSecond") or 0.0)
        metrics.SPARK_PROCESSED_ROWS_PER_SECOND.set(progress.get("processedRowsPerSecond") or 0.0)
        metrics.SPARK_BATCH_SECONDS.set(duration_ms / 1000.0)
        metrics.SPARK_OFFSETS_BEHIND.set(behind)
        metrics.EVENTS_RECEIVED.labels(component=COMPONENT).inc(progress.get("numInputRows") or 0)
        log.info(orjson.dumps({
            "event": "spark_query_progress", "id": progress.get("id"), "batch_id": progress.get("batchId"),
            "input_rows": progress.get("numInputRows"), "input_rows_per_s": progress.get("inputRowsPerSecond"),
            "processed_rows_per_s": progress.get("processedRowsPerSecond"), "batch_ms": duration_ms,
            "offsets_behind_latest": behind, "durations_ms": progress.get("durationMs")}).decode())

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(0)
        if event.exception:
            self.failure = event.exception
            metrics.SPARK_QUERY_FAILURES.inc()
            log.error(orjson.dumps({"event": "spark_query_terminated", "id": str(event.id),
                                    "exception": event.exception,
                                    "error_class": getattr(event, "errorClassOnException", None)}).decode())
        else:
            log.info(orjson.dumps({"event": "spark_query_terminated", "id": str(event.id)}).decode())
