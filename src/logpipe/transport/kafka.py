"""Kafka clients (confluent-kafka): topic administration and the producer the gateway and simulator use.

Any librdkafka property can be passed through ``KafkaConfig.properties`` (``LOGPIPE_KAFKA__<property>``
with dots written as underscores, or a ``[kafka]`` table in the TOML file), so SASL/SSL clusters work
without code changes.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from logpipe import metrics
from logpipe.codec.ndjson import encode_lines
from logpipe.transport.topics import (
    DEFAULT_PREFIX,
    OTHER_SUFFIX,
    SERVICE_SUFFIXES,
    error_topic,
    system_topic,
    topic_names,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str
    topic_prefix: str = DEFAULT_PREFIX
    partitions: int = 3
    replication_factor: int = 1
    retention_ms: int = 7 * 86_400_000
    compression: str = "lz4"
    group_id: str = "logpipe-processor"
    delivery_timeout_ms: int = 10_000
    properties: dict[str, Any] = field(default_factory=dict)

    def client(self, **overrides: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap, **overrides, **self.properties}


def ensure_topics(config: KafkaConfig, timeout_s: float = 15.0) -> list[str]:
    """Create the topics that are missing; returns the ones created."""
    admin = AdminClient(config.client())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in topic_names(config.topic_prefix) if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics([
        NewTopic(t, config.partitions, config.replication_factor,
                 config={"retention.ms": str(config.retention_ms), "compression.type": "producer"})
        for t in missing])
    for future in futures.values():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return missing


def message_keys(table: pa.Table) -> list[str]:
    """A user's events stay in order on one partition and users spread over all partitions, so the
    processor scales with them; events without a user are keyed by service."""
    service = pc.fill_null(table.column("service"), "")
    if "user_id" not in table.column_names:
        return service.to_pylist()
    user = table.column("user_id")
    return pc.if_else(pc.and_kleene(pc.is_valid(user), pc.not_equal(user, "")), user, service).to_pylist()


def producer_settings(config: KafkaConfig, queue_capacity: int = 500_000) -> dict[str, object]:
    """librdkafka producer settings: durable (acks=all, idempotent) and batched for throughput; its queue
    is bounded by messages and by bytes (128 MiB; librdkafka's default is 1 GiB)."""
    return {"enable.idempotence": True, "acks": "all", "compression.type": config.compression,
            "linger.ms": 20, "batch.size": 1_000_000, "queue.buffering.max.messages": queue_capacity,
            "queue.buffering.max.kbytes": 128 * 1024, "delivery.timeout.ms": config.delivery_timeout_ms}


def consumer_settings(group_id: str) -> dict[str, object]:
    """librdkafka settings of the processor's consumer: offsets committed by hand after the insert,
    cooperative rebalancing, quick to notice a dead member, large fetches."""
    return {"group.id": group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "topic.metadata.refresh.interval.ms": 2000,
            "fetch.wait.max.ms": 100, "max.partition.fetch.bytes": 10 * 1024 * 1024}


class DeliveryFailed(Exception):
    pass


def topics_for(table: pa.Table, prefix: str) -> np.ndarray:
    """The topic of each row: its service's, ``other`` for a service without one, and the error and
    system topics for those kinds."""
    services = table.column("service").to_numpy(zero_copy_only=False)
    kinds = table.column("kind").to_numpy(zero_copy_only=False) if "kind" in table.column_names else None
    # objects, not fixed-width strings: a batch of "auth" alone would cut "logs.error" to the width of "logs.auth"
    topics = np.char.add(prefix, services.astype(str)).astype(object)
    topics[~np.isin(services, SERVICE_SUFFIXES)] = prefix + OTHER_SUFFIX
    if kinds is not None:
        topics[kinds == "app_error"] = error_topic(prefix)
        topics[kinds == "system"] = system_topic(prefix)
    return topics


class _Delivery:
    """The delivery reports of one ``send_raw``: its future resolves once every message is acknowledged,
    or fails with the first error. Called once per message, from whichever thread serves the reports,
    so the common case is one atomic ``next`` on a counter, with no lock: a lock taken per report
    cost about 2 µs of CPU per message more (bench/results/history/2026-12-02-kafka-path.md)."""

    __slots__ = ("acknowledged", "done", "expected", "failed", "generation", "transport")

    def __init__(self, transport: KafkaProducerTransport, done: Future[int], expected: int, generation: int):
        self.transport = transport
        self.done = done
        self.expected = expected
        self.generation = generation
        self.acknowledged = itertools.count(1)
        self.failed = threading.Lock()

    def delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is None:
            # a failed message never counts, so the count reaches expected only if every one succeeded
            if next(self.acknowledged) == self.expected:
                metrics.EVENTS_SENT.labels(component=self.transport.component).inc(self.expected)
                self.done.set_result(self.expected)
            return
        metrics.EVENTS_ERRORS.labels(component=self.transport.component).inc()
        with self.failed:
            if not self.done.done():
                self.done.set_exception(DeliveryFailed(err.str()))
        if err.code() in self.transport.REPLACE_ON:
            self.transport._replace(self.generation, err.str())


class KafkaProducerTransport:
    """Produces events one message each (JSON), keyed by service so a service's events stay ordered.

    ``send`` returns a future that resolves when the broker has acknowledged every message of the
    batch (acks=all, idempotent), or fails with the first delivery error.

    An idempotent producer whose messages timed out can be left fenced by the broker (its epoch bump
    refused), after which every later message times out too. So a delivery failure of that kind
    retires the librdkafka producer and starts a fresh one (a new producer id); the failed batch was
    never acknowledged, so its sender retries it.
    """

    REPLACE_ON = frozenset({
        KafkaError._MSG_TIMED_OUT, KafkaError._FENCED, KafkaError._FATAL, KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID,
    })

    def __init__(self, config: KafkaConfig, component: str = "kafka_producer"):
        self.config = config
        self.component = component
        self.queue_capacity = 500_000
        self._swap_lock = threading.Lock()
        self.generation = 0
        self.producer = self._new_producer()
        metrics.register_component(component)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="logpipe-producer-poll", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        generation = self.generation

        def on_error(err: KafkaError) -> None:
            if err.fatal():
                self._replace(generation, f"fatal producer error: {err.str()}")

        return Producer(self.config.client(**producer_settings(self.config, self.queue_capacity), error_cb=on_error))

    def _replace(self, generation: int, reason: str) -> None:
        """Swap in a fresh producer once per failing generation; the old one's queue is failed fast."""
        with self._swap_lock:
            if generation != self.generation:
                return
            retired = self.producer
            self.generation += 1
            self.producer = self._new_producer()
        log.warning("kafka producer replaced (generation %d): %s", self.generation, reason)
        metrics.EVENTS_ERRORS.labels(component=self.component).inc()

        def retire() -> None:
            retired.purge()
            retired.flush(5.0)  # serves the purged messages' callbacks, failing their batches

        threading.Thread(target=retire, name="logpipe-producer-retire", daemon=True).start()

    def _poll(self) -> None:
        metrics.name_os_thread()
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def send(self, table: pa.Table) -> Future[int]:
        topics = topics_for(table, self.config.topic_prefix).tolist()
        return self.send_raw(encode_lines(table), topics, message_keys(table))

    def has_room_for(self, messages: int) -> bool:
        return len(self.producer) + messages <= self.queue_capacity

    def send_raw(self, values: list[bytes], topics: list[str], keys: list[str | None],
                 headers: list[list[tuple[str, bytes]]] | None = None) -> Future[int]:
        done: Future[int] = Future()
        if not values:
            done.set_result(0)
            return done
        delivered = _Delivery(self, done, len(values), self.generation).delivered
        producer = self.producer  # one producer for the whole batch, even if it is replaced meanwhile
        produce = producer.produce
        for i, value in enumerate(values):
            while True:
                try:
                    if headers is None:
                        produce(topics[i], value, keys[i], on_delivery=delivered)
                    else:
                        produce(topics[i], value, keys[i], headers=headers[i], on_delivery=delivered)
                    break
                except BufferError:
                    if self._stop.is_set():
                        raise
                    producer.poll(0.05)  # the queue that is full is this producer's
        return done

    def flush(self, timeout_s: float = 30.0) -> int:
        return self.producer.flush(timeout_s)

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._poller.join(2)
