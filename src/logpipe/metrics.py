"""Metric names every component emits, defined once. The watchdog and the dashboard read these names.

Components: simulator, gateway, processor, clickhouse_sink, dead_letter_sink (and kafka_producer,
kafka_consumer, spark, and the sources otlp, syslog and file when those run).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_RECEIVED = Counter("logpipe_events_received", "Events a component took in.",
                          ["component"], registry=REGISTRY)
EVENTS_SENT = Counter("logpipe_events_sent", "Events a component handed on (for sinks: durably written).",
                      ["component"], registry=REGISTRY)
EVENTS_ERRORS = Counter("logpipe_events_errors", "Events a component rejected or failed on.",
                        ["component"], registry=REGISTRY)
EVENTS_DROPPED = Counter("logpipe_events_dropped", "Events refused for overload (the sender was told to retry).",
                         ["component"], registry=REGISTRY)
BYTES_RECEIVED = Counter("logpipe_bytes_received", "Payload bytes a component took in.",
                         ["component"], registry=REGISTRY)
BATCH_ROWS = Histogram("logpipe_batch_rows", "Rows per batch written.", ["component"], registry=REGISTRY,
                       buckets=(10, 100, 1_000, 5_000, 10_000, 50_000, 100_000, 250_000, 1_000_000))
WRITE_SECONDS = Histogram("logpipe_write_seconds", "Time to write one batch.", ["component"], registry=REGISTRY,
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
NORMALIZE_SECONDS = Histogram("logpipe_normalize_seconds", "Time to decode and normalize one batch.", ["component"],
                              registry=REGISTRY, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
FRESHNESS_SECONDS = Gauge("logpipe_freshness_seconds",
                          "Now minus the newest event time written to ClickHouse.", registry=REGISTRY)
QUEUE_EVENTS = Gauge("logpipe_queue_events", "Events waiting in a component's input queue.",
                     ["component"], registry=REGISTRY)
FILES_FOLLOWED = Gauge("logpipe_files_followed", "Files a file source is following now.", ["component"],
                       registry=REGISTRY)
COMPONENT_UP = Gauge("logpipe_component_up", "1 when the component is running and healthy.",
                     ["component"], registry=REGISTRY)

KAFKA_LAG = Gauge("logpipe_kafka_consumer_lag", "Messages behind the partition's end, per assigned partition.",
                  ["topic", "partition"], registry=REGISTRY)
KAFKA_RECORD_AGE_SECONDS = Histogram(
    "logpipe_kafka_record_age_seconds", "Age of the newest message of each poll when the consumer takes it (now "
    "minus its Kafka timestamp): the time a record spends between producer and processor.", registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
KAFKA_COMMIT_SECONDS = Histogram("logpipe_kafka_commit_seconds", "Time to commit offsets synchronously.",
                                 registry=REGISTRY, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))

PROCESSOR_EXCEPTIONS = Counter("logpipe_processor_exceptions", "Batches a processor failed to write (retried or "
                               "dead-lettered as a whole).", registry=REGISTRY)
SPARK_INPUT_ROWS_PER_SECOND = Gauge("logpipe_spark_input_rows_per_second",
                                    "Rows per second arriving at the Spark query (last micro-batch).",
                                    registry=REGISTRY)
SPARK_PROCESSED_ROWS_PER_SECOND = Gauge("logpipe_spark_processed_rows_per_second",
                                        "Rows per second the Spark query processed (last micro-batch).",
                                        registry=REGISTRY)
SPARK_BATCH_SECONDS = Gauge("logpipe_spark_batch_seconds", "Duration of the last micro-batch.", registry=REGISTRY)
SPARK_OFFSETS_BEHIND = Gauge("logpipe_spark_offsets_behind_latest",
                             "Offsets between the last micro-batch's end and the latest in Kafka.", registry=REGISTRY)
SPARK_QUERY_FAILURES = Counter("logpipe_spark_query_failures", "Spark queries terminated by an exception.",
                               registry=REGISTRY)

WATCHDOG_ALERTS_FIRING = Gauge("logpipe_watchdog_alerts_firing", "Alerts firing now.", registry=REGISTRY)
WATCHDOG_CONTAINER_ALERTS = Counter("logpipe_watchdog_container_alerts",
                                    "Container events and log lines that alerted.", registry=REGISTRY)
WATCHDOG_NOTIFICATIONS = Counter("logpipe_watchdog_notifications", "Alert messages by notifier and outcome.",
                                 ["notifier", "outcome"], registry=REGISTRY)

DIMENSION_SYNCS = Counter("logpipe_dimension_syncs", "Dimension syncs (catalog, calendar, dictionaries) by result: "
                          "ok or error.", ["result"], registry=REGISTRY)
DIMENSION_SYNC_SECONDS = Histogram("logpipe_dimension_sync_seconds", "Time one dimension sync took.",
                                   registry=REGISTRY, buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30))

COMPONENT_METRICS = (EVENTS_RECEIVED, EVENTS_SENT, EVENTS_ERRORS, EVENTS_DROPPED, BYTES_RECEIVED)


def register_component(component: str) -> None:
    """Make a component's series exist at zero, so a scrape shows it before its first event."""
    for metric in COMPONENT_METRICS:
        metric.labels(component=component)
    COMPONENT_UP.labels(component=component)


def sample_name(metric: Counter | Gauge | Histogram, suffix: str = "") -> str:
    """The name a scrape shows for ``metric`` (a counter's ends in ``_total``, a histogram's in ``_sum``...),
    for readers of ``/metrics`` (the watchdog, the bench), so they use the names defined here."""
    return metric._name + suffix


def render() -> bytes:
    return generate_latest(REGISTRY)


def counter_value(metric: Counter, component: str) -> float:
    return metric.labels(component=component)._value.get()


OS_THREAD_NAMES: dict[str, str] = {}  # the name in the OS (cut to 15 bytes) -> the thread's name
_named = threading.local()  # .done on a thread that named itself


def name_os_thread() -> None:
    """Give the calling thread its Python name in the OS too (``top -H``, ``/proc/<pid>/task/*/comm``),
    so CPU time can be told apart per component of a process: ``lp:`` and the name without "logpipe-",
    cut to the 15 bytes Linux keeps."""
    if threading.current_thread() is threading.main_thread():
        return  # the main thread's name is the process's name (ps, pkill)
    full = threading.current_thread().name.removeprefix("logpipe-")
    name = ("lp:" + full)[:15]
    OS_THREAD_NAMES[name] = full
    _named.done = True
    with contextlib.suppress(OSError, AttributeError):  # not Linux: threads keep the process's name
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name.encode()), 0, 0, 0)  # 15 = PR_SET_NAME


def restore_os_thread_name() -> None:
    """After a call that renames the calling thread in the OS (chdb calls a thread that runs a query
    "Unknown"): a thread that named itself with ``name_os_thread`` takes its name back."""
    if getattr(_named, "done", False):
        name_os_thread()
