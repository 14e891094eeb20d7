"""The composition root: wires the stages of the all-in-one process (``logpipe up``).

Stages know nothing of each other beyond the objects passed in here.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

from logpipe import metrics
from logpipe.config import Settings
from logpipe.dashboard.history import PipelineHistory
from logpipe.events import Provenance
from logpipe.processing.processor import Processor
from logpipe.simulator.runner import SimulatorRunner
from logpipe.transport.channel import Channel, ChannelClosed, ChannelFull, Envelope, IngestResult
from logpipe.transport.wire import encode_ndjson_buffer
from logpipe.warehouse.sink import dead_letter_sink, fact_sink
from logpipe.warehouse.store import open_store

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The pipeline cannot take more now; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: float = 1.0):
        super().__init__("pipeline is at capacity")
        self.retry_after_s = retry_after_s


class ShuttingDown(Exception):
    pass


def _count_ingest_result(future: Future[IngestResult]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        metrics.EVENTS_SENT.labels(component="gateway").inc(result.accepted)
        metrics.EVENTS_ERRORS.labels(component="gateway").inc(result.rejected)


class Pipeline:
    """All-in-one: with ``kafka_bootstrap`` set, intake produces to Kafka and a Kafka processor
    consumes in the same process; otherwise the in-process channel joins them."""

    def __init__(self, settings: Settings, run_processor: bool = True):
        self.settings = settings
        self.started_at = time.time()
        self.kafka = settings.kafka_config() if settings.kafka_bootstrap else None
        self.run_processor = run_processor
        # A gateway without a processor still reads a ClickHouse server (dashboard, queries, watchdog);
        # an embedded store belongs to whichever process runs the processor.
        self.store = open_store(settings.warehouse()) if run_processor or settings.clickhouse_url else None
        self.channel = Channel(settings.queue_max_events)
        self.processor = (Processor(self.channel, fact_sink(self.store), dead_letter_sink(self.store),
                                    settings.processor()) if run_processor else None)
        self.producer = None
        self.kafka_processor = None
        self._kafka_thread = None
        self.simulator = SimulatorRunner(settings.simulator(), self._emit_simulated)
        self.watchdog = None
        self.history = PipelineHistory(self.stats)
        metrics.register_component("gateway")

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.store is not None:
            self.store.wait_ready()
            self.store.apply_schema()
            metrics.COMPONENT_UP.labels(component="store").set(1)
        metrics.COMPONENT_UP.labels(component="gateway").set(1)
        if self.kafka is not None:
            from logpipe.processing.kafka_processor import KafkaProcessor
            from logpipe.transport.kafka import KafkaProducerTransport, ensure_topics

            ensure_topics(self.kafka)
            self.producer = KafkaProducerTransport(self.kafka)
            if self.run_processor:
                self.kafka_processor = KafkaProcessor(self.kafka, self.store, fact_sink(self.store),
                                                      dead_letter_sink(self.store), self.settings.processor())
                self._kafka_thread = threading.Thread(target=self.kafka_processor.run, name="logpipe-kafka-processor",
                                                      daemon=True)
                self._kafka_thread.start()
        elif self.processor is not None:
            self.processor.start()
        self.simulator.start()
        self.history.start()
        if self.settings.watch_enabled:
            from logpipe.monitor.checks import Observer
            from logpipe.monitor.engine import build_watchdog

            self.watchdog = build_watchdog(self.settings.monitor(),
                                           Observer(self.store, self.health, lambda: metrics.render().decode()))
            self.watchdog.start()
        log.info("pipeline started")

    def stop(self) -> None:
        """Graceful: stop the simulator, refuse new intake, drain and flush, close the store."""
        self.history.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        log.info("stopping: simulator")
        self.simulator.stop()
        self.channel.close()
        if self.producer is not None:
            log.info("stopping: flushing the Kafka producer")
            self.producer.close()
        if self.kafka_processor is not None:
            self.kafka_processor.stop()
            self._kafka_thread.join(60)
        if self.processor is not None:
            log.info("stopping: draining %d queued events", self.channel.events)
            self.processor.stop()
        if self.store is not None:
            self.store.close()
            metrics.COMPONENT_UP.labels(component="store").set(0)
        log.info("pipeline stopped")

    # intake --------------------------------------------------------------------------------------
    def _emit_simulated(self, table: pa.Table) -> None:
        if self.producer is not None:
            self.producer.send(table).result(timeout=60)  # bounded: waits for the broker
            return
        payload = encode_ndjson_buffer(table)
        envelope = Envelope(payload, table.num_rows, Provenance("simulator"))
        while True:
            try:
                self.channel.put(envelope, timeout=0.5)
                return
            except ChannelFull:
                if self.channel.closed:
                    raise ChannelClosed from None

    def submit(self, payload: bytes, events: int, source: str = "http", sender: str = "") -> Future[IngestResult]:
        """Hand a payload on without waiting for room; the future resolves once it is durable.
        ``sender`` is the name of the named token it came with, recorded with its rows."""
        metrics.EVENTS_RECEIVED.labels(component="gateway").inc(events)
        metrics.BYTES_RECEIVED.labels(component="gateway").inc(len(payload))
        if self.producer is not None:
            future = self._produce_validated(payload, sender)
            future.add_done_callback(_count_ingest_result)
            return future
        future: Future[IngestResult] = Future()
        try:
            self.channel.put(Envelope(payload, events, Provenance(source, sender=sender), future), timeout=0)
        except ChannelFull:
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(events)
            raise Overloaded(retry_after_s=1.0) from None
        except ChannelClosed:
            raise ShuttingDown from None
        future.add_done_callback(_count_ingest_result)
        return future

    def _produce_validated(self, payload: bytes, sender: str = "") -> Future[IngestResult]:
        """Validate here to answer with reasons; produce every record, the processor dead-letters
        the bad ones (logs.dlq and dead_letter) so that path stays in one place. A named sender goes
        with each record as the ``logpipe-sender`` header."""
        from logpipe.processing.normalize import normalize_ndjson
        from logpipe.transport.kafka import message_keys
        from logpipe.transport.topics import OTHER_SUFFIX, SENDER_HEADER

        normalized = normalize_ndjson(payload, Provenance("http"))
        lines = [line for line in payload.split(b"\n") if line.strip()]
        bad_positions = {b.index for b in normalized.dead_letters}
        good_lines = [line for i, line in enumerate(lines) if i not in bad_positions]
        topics = self.producer.topics_for(normalized.facts).tolist()
        keys = message_keys(normalized.facts)
        bad_lines = [lines[i] for i in sorted(bad_positions) if i < len(lines)]
        other = self.kafka.topic_prefix + OTHER_SUFFIX
        if not self.producer.has_room_for(len(lines)):
            # refuse before producing anything, so a refused batch is never half in Kafka
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(len(lines))
            raise Overloaded(retry_after_s=1.0)
        values = good_lines + bad_lines
        headers = [[(SENDER_HEADER, sender.encode())]] * len(values) if sender else None
        delivered = self.producer.send_raw(values, topics + [other] * len(bad_lines), keys + [None] * len(bad_lines),
                                           headers)
        result = IngestResult(len(good_lines), len(normalized.dead_letters),
                              [{"index": b.index, "reason": b.reason} for b in normalized.dead_letters[:100]])
        future: Future[IngestResult] = Future()

        def done(f: Future[int]) -> None:
            if f.exception() is not None:
                future.set_exception(f.exception())
            else:
                future.set_result(result)

        delivered.add_done_callback(done)
        return future

    # observation ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        if self.processor is None or self.kafka is not None:
            return self._health_kafka()
        store_ok = self.store.ping()
        components = {
            "gateway": {"status": "up"},
            "store": {"status": "up" if store_ok else "down",
                      "backend": "embedded" if self.store.embedded else "server"},
            "processor": {"status": "up" if self.processor.running else "down",
                          "queued_events": self.channel.events,
                          "last_error": self.processor.checkpoint.last_error},
            "simulator": {"status": "up" if self.simulator.status()["running"] else "paused"},
        }
        healthy = store_ok and self.processor.running
        return {"status": "ok" if healthy else "degraded", "components": components}

    def _health_kafka(self) -> dict[str, Any]:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient(self.kafka.client()).list_topics(timeout=3)
            kafka_ok = True
        except Exception:
            kafka_ok = False
        components: dict[str, Any] = {"gateway": {"status": "up"},
                                      "kafka": {"status": "up" if kafka_ok else "down"}}
        healthy = kafka_ok
        if self.store is not None:
            store_ok = self.store.ping()
            components["store"] = {"status": "up" if store_ok else "down"}
            healthy = healthy and store_ok
        if self.run_processor:
            processor_ok = self._kafka_thread is not None and self._kafka_thread.is_alive()
            components["processor"] = {"status": "up" if processor_ok else "down"}
            healthy = healthy and processor_ok
        return {"status": "ok" if healthy else "degraded", "components": components}

    def stats(self) -> dict[str, float]:
        def value(metric, component: str) -> float:
            return metrics.counter_value(metric, component)

        return {
            "generated": value(metrics.EVENTS_SENT, "simulator"),
            "accepted": value(metrics.EVENTS_RECEIVED, "gateway"),
            "inserted": value(metrics.EVENTS_SENT, "clickhouse_sink"),
            "dead_lettered": value(metrics.EVENTS_SENT, "dead_letter_sink"),
            "queued": float(self.channel.events),
            "freshness_s": metrics.FRESHNESS_SECONDS._value.get(),
        }
