"""``logpipe up`` and ``logpipe gateway``: the stages of the all-in-one process, wired together.

One engine is chosen when the process is built, and nothing decides it again:

- ``EmbeddedEngine``: the in-process channel between intake and the embedded processor (no Kafka);
- ``KafkaEngine``: intake produces to Kafka; with ``run_processor`` (``logpipe up --kafka``) a Kafka
  processor in the same process consumes, without it (``logpipe gateway``) ``logpipe process`` does.

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
from logpipe.auth.tokens import TokenRegistry
from logpipe.codec.ndjson import encode_ndjson_buffer, encode_sparse_lines
from logpipe.config import Settings
from logpipe.dashboard.history import PipelineHistory
from logpipe.events import Provenance
from logpipe.gateway.body import content_lines
from logpipe.gateway.deps import Services
from logpipe.gateway.server import BackgroundServer
from logpipe.health import PAUSED, UP, component, report
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.contract import Sinks
from logpipe.processing.dead_letters import DeadLetters
from logpipe.processing.processor import Processor
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.simulator.runner import SimulatorRunner
from logpipe.sources.syslog import server as syslog
from logpipe.sources.syslog.parse import parse_messages
from logpipe.transport.channel import Channel, ChannelClosed, ChannelFull, Envelope
from logpipe.transport.intake import IngestResult, Overloaded, RecentKeys, Records, ShuttingDown, idempotency_token
from logpipe.transport.kafka import KafkaConfig, topics_for
from logpipe.transport.kafka_overview import KafkaOverview
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.connect import open_store
from logpipe.warehouse.dimensions import DimensionSync, start_sync

log = logging.getLogger(__name__)


def _count_ingest_result(future: Future[IngestResult]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        metrics.EVENTS_SENT.labels(component="gateway").inc(result.accepted)
        metrics.EVENTS_ERRORS.labels(component="gateway").inc(result.rejected)


class EmbeddedEngine:
    """Intake -> the in-process channel (bounded by events and bytes) -> the embedded processor."""

    def __init__(self, store: Warehouse, config: ProcessorConfig, warm_decoder: bool = True):
        self.channel = Channel(config.queue_max_events, config.queue_max_bytes)
        self.processor = Processor(self.channel, Sinks(fact_sink(store), [dead_letter_sink(store)]), config,
                                   warm_decoder)

    writes_store = True

    def start(self) -> None:
        self.processor.start()

    def stop(self) -> None:
        self.channel.close()
        log.info("stopping: draining %d queued events", self.channel.events)
        self.processor.stop()

    def submit(self, payload: bytes | Records, events: int, provenance: Provenance,
               token: str | None = None) -> Future[IngestResult]:
        future: Future[IngestResult] = Future()
        try:
            self.channel.put(Envelope(payload, events, provenance, future, token), timeout=0)
        except ChannelFull:
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(events)
            raise Overloaded(retry_after_s=1.0) from None
        except ChannelClosed:
            raise ShuttingDown from None
        return future

    def emit(self, table: pa.Table) -> None:
        """The simulator's batches wait for room (backpressure) rather than being refused."""
        envelope = Envelope(encode_ndjson_buffer(table), table.num_rows, Provenance("simulator"))
        while True:
            try:
                self.channel.put(envelope, timeout=0.5)
                return
            except ChannelFull:
                if self.channel.closed:
                    raise ChannelClosed from None

    def components(self) -> dict[str, dict[str, Any]]:
        return {"processor": component(self.processor.running, queued_events=self.channel.events,
                                       queued_bytes=self.channel.bytes, last_error=self.processor.last_error)}

    @property
    def queued(self) -> float:
        return float(self.channel.events)


def _settle(future: Future[IngestResult], done: Future[IngestResult]) -> None:
    if done.exception() is not None:
        future.set_exception(done.exception())
    else:
        future.set_result(done.result())


class KafkaEngine:
    """Intake -> Kafka; and, when ``store`` is given, a Kafka processor in this process -> ClickHouse."""

    def __init__(self, kafka: KafkaConfig, store: Warehouse | None, config: ProcessorConfig):
        self.kafka = kafka
        self.store = store
        self.config = config
        self.producer = None
        self.processor = None
        self._thread: threading.Thread | None = None
        # requests waiting for validation: validated together, they pay the normalizer's fixed cost once
        self._pending: list[tuple[bytes, str, Future[IngestResult]]] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._validator: threading.Thread | None = None

    @property
    def writes_store(self) -> bool:
        return self.store is not None

    def start(self) -> None:
        from logpipe.processing.kafka_processor import KafkaProcessor
        from logpipe.transport.kafka import KafkaProducerTransport, ensure_topics

        ensure_topics(self.kafka)
        self.producer = KafkaProducerTransport(self.kafka)
        self._validator = threading.Thread(target=self._validate_pending, name="logpipe-kafka-validator", daemon=True)
        self._validator.start()
        if self.store is not None:
            self.processor = KafkaProcessor(self.kafka, self.store, fact_sink(self.store),
                                            dead_letter_sink(self.store), self.config)
            self._thread = threading.Thread(target=self.processor.run, name="logpipe-kafka-processor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:  # the requests already taken are validated and produced first
            self._stopping = True
            self._wake.notify_all()
        if self._validator is not None:
            self._validator.join(60)
        if self.producer is not None:
            log.info("stopping: flushing the Kafka producer")
            self.producer.close()
        if self.processor is not None:
            self.processor.stop()
            self._thread.join(60)

    def submit(self, payload: bytes | Records, events: int, provenance: Provenance,
               token: str | None = None) -> Future[IngestResult]:
        """``token``: Kafka offers no deduplication across produced records; a keyed retry is caught by
        the process's memory of recent keys only. A source's columns go to Kafka as JSON, one event a
        message, like every other producer's."""
        if self.producer is None:
            raise ShuttingDown
        if isinstance(payload, Records):
            return self._produce_records(payload, provenance)
        if not self.producer.has_room_for(events):
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(events)
            raise Overloaded(retry_after_s=1.0)
        future: Future[IngestResult] = Future()
        with self._wake:
            if self._stopping:
                raise ShuttingDown
            self._pending.append((payload, provenance.sender, future))
            self._wake.notify()
        return future

    def _validate_pending(self) -> None:
        """Takes every request waiting, validates them in one call and produces each: while one batch is
        validated the next gathers, so the batches grow with the load and add no wait of their own."""
        metrics.name_os_thread()
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            try:
                self._produce_validated(batch)
            except Exception as exc:  # nothing of a failed batch is claimed: each request answers 5xx
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    def _produce_records(self, records: Records, provenance: Provenance) -> Future[IngestResult]:
        """A source's rows, one JSON message each, named by the ``logpipe-source`` header. A row that
        the source could not read, or that fails validation, goes to the other topic with its raw text
        and its reason as the ``logpipe-refused`` header: the processor dead-letters it with that
        reason, as the embedded engine does."""
        from logpipe.processing.normalize import normalize_records
        from logpipe.transport.kafka import message_keys
        from logpipe.transport.topics import OTHER_SUFFIX, REFUSED_HEADER, SENDER_HEADER, SOURCE_HEADER

        normalized = normalize_records(records, provenance, rules=self.config.rules)
        lines = encode_sparse_lines(records.table)
        raw = records.raw.to_pylist() if records.raw is not None else [None] * len(lines)
        named = [(SOURCE_HEADER, provenance.source.encode())]
        if provenance.sender:
            named.append((SENDER_HEADER, provenance.sender.encode()))
        good = normalized.fact_positions.tolist()
        values = [lines[i] for i in good]
        topics = topics_for(normalized.facts, self.kafka.topic_prefix).tolist()
        keys = message_keys(normalized.facts)
        headers = [named] * len(values)
        for bad in normalized.dead_letters:
            text = raw[bad.index]
            values.append(text.encode() if text is not None else lines[bad.index])
            headers.append([*named, (REFUSED_HEADER, bad.reason.encode())])
        topics += [self.kafka.topic_prefix + OTHER_SUFFIX] * len(normalized.dead_letters)
        keys += [None] * len(normalized.dead_letters)
        return self._send(values, topics, keys, headers, IngestResult(
            len(good), len(normalized.dead_letters),
            [{"index": b.index, "reason": b.reason} for b in normalized.dead_letters[:100]]))

    def _produce_validated(self, batch: list[tuple[bytes, str, Future[IngestResult]]]) -> None:
        """Validate here to answer with reasons; produce every record, the processor dead-letters
        the bad ones (logs.dlq and dead_letter) so that path stays in one place. A named sender goes
        with each record as the ``logpipe-sender`` header. The requests of ``batch`` are validated as
        one payload, and each is answered with its own records' outcome."""
        from logpipe.processing.normalize import normalize_ndjson
        from logpipe.transport.kafka import message_keys
        from logpipe.transport.topics import OTHER_SUFFIX, SENDER_HEADER

        per_request = [content_lines(payload) for payload, _, _ in batch]
        normalized = normalize_ndjson(b"\n".join(line for lines in per_request for line in lines),
                                      Provenance("http"), rules=self.config.rules)
        reasons = {b.index: b.reason for b in normalized.dead_letters}
        topics = topics_for(normalized.facts, self.kafka.topic_prefix).tolist()
        keys = message_keys(normalized.facts)
        other = self.kafka.topic_prefix + OTHER_SUFFIX
        first, fact = 0, 0
        for lines, (_, sender, future) in zip(per_request, batch, strict=True):
            bad = [i for i in range(len(lines)) if first + i in reasons] if reasons else []
            good = len(lines) - len(bad)
            values = lines if not bad else \
                [line for i, line in enumerate(lines) if first + i not in reasons] + [lines[i] for i in bad]
            headers = [[(SENDER_HEADER, sender.encode())]] * len(values) if sender else None
            result = IngestResult(good, len(bad), [{"index": i, "reason": reasons[first + i]} for i in bad[:100]])
            try:
                sent = self._send(values, topics[fact:fact + good] + [other] * len(bad),
                                  keys[fact:fact + good] + [None] * len(bad), headers, result)
                sent.add_done_callback(lambda done, future=future: _settle(future, done))
            except Exception as exc:  # a full producer: this request claims nothing
                future.set_exception(exc)
            first, fact = first + len(lines), fact + good

    def _send(self, values: list[bytes], topics: list[str], keys: list[str | None],
              headers: list[list[tuple[str, bytes]]] | None, result: IngestResult) -> Future[IngestResult]:
        if not self.producer.has_room_for(len(values)):
            # refuse before producing anything, so a refused batch is never half in Kafka
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(len(values))
            raise Overloaded(retry_after_s=1.0)
        delivered = self.producer.send_raw(values, topics, keys, headers)
        future: Future[IngestResult] = Future()

        def done(f: Future[int]) -> None:
            if f.exception() is not None:
                future.set_exception(f.exception())
            else:
                future.set_result(result)

        delivered.add_done_callback(done)
        return future

    def emit(self, table: pa.Table) -> None:
        if self.producer is None:
            raise ChannelClosed
        self.producer.send(table).result(timeout=60)  # bounded: waits for the broker

    def components(self) -> dict[str, dict[str, Any]]:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient(self.kafka.client()).list_topics(timeout=3)
            kafka_ok = True
        except Exception:
            kafka_ok = False
        found = {"kafka": component(kafka_ok)}
        if self.store is not None:
            alive = self._thread is not None and self._thread.is_alive()
            found["processor"] = component(alive, last_error=self.processor.last_error if self.processor else None)
        return found

    @property
    def queued(self) -> float:
        return 0.0


class Pipeline:
    """The all-in-one process: intake (an ``Intake``), one engine, the simulator, the watchdog, and
    the store. ``run_processor=False`` is ``logpipe gateway``: intake to Kafka only."""

    def __init__(self, settings: Settings, run_processor: bool = True, tokens: TokenRegistry | None = None):
        self.settings = settings
        self.tokens = tokens
        self.started_at = time.time()
        # A gateway without a processor still reads a ClickHouse server (dashboard, queries, watchdog);
        # an embedded store belongs to whichever process runs the processor.
        self.store = open_store(settings.warehouse()) if run_processor or settings.clickhouse_url else None
        if settings.kafka_bootstrap:
            self.engine: EmbeddedEngine | KafkaEngine = KafkaEngine(
                settings.kafka_config(), self.store if run_processor else None, settings.processor())
        else:
            # NDJSON from the start is the simulator's: without it, the first POST loads the scanner
            self.engine = EmbeddedEngine(self.store, settings.processor(), warm_decoder=settings.sim_enabled)
        # two batches fit the queue: one waits while the processor takes the other
        self.simulator = SimulatorRunner(settings.simulator(), self.engine.emit,
                                         max_batch=settings.processor().queue_max_events // 2)
        self.recent_keys = RecentKeys(settings.idempotency_keep_s)
        self.watchdog = None
        self.dimensions: DimensionSync | None = None
        self.sources: list[Any] = []
        self.history = PipelineHistory(self.stats)
        metrics.register_component("gateway")

    @property
    def processor(self) -> Processor | None:
        """The embedded processor, which operators may pause; None with Kafka."""
        return self.engine.processor if isinstance(self.engine, EmbeddedEngine) else None

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.store is not None:
            self.store.wait_ready()
            self.store.apply_schema()
            metrics.COMPONENT_UP.labels(component="store").set(1)
        metrics.COMPONENT_UP.labels(component="gateway").set(1)
        self.engine.start()
        if self.engine.writes_store:
            self.dimensions = start_sync(self.store, self.settings.dimensions(), self.settings.retention_days)
        self._start_sources()
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
        log.info("stopping: sources and simulator")
        for source in reversed(self.sources):
            source.stop()
        self.sources.clear()
        self.simulator.stop()
        self.engine.stop()
        if self.dimensions is not None:
            self.dimensions.stop()
        if self.store is not None:
            self.store.close()
            metrics.COMPONENT_UP.labels(component="store").set(0)
        log.info("pipeline stopped")

    def _start_sources(self) -> None:
        """The OTLP receiver, the syslog listener and the file sources the settings ask for, each
        handing its records to this pipeline's intake."""
        settings = self.settings
        if settings.otlp_enabled:
            from logpipe.auth.tokens import open_registry
            from logpipe.sources.otlp.receiver import create_otlp_app

            tokens = self.tokens if self.tokens is not None else open_registry(settings.auth())[0]
            app = create_otlp_app(self, settings.otlp(), tokens)
            self.sources.append(BackgroundServer(app, settings.otlp_host, settings.otlp_port).start())
            log.info("OTLP/HTTP receiver on %s:%d", settings.otlp_host, settings.otlp_port)
        if settings.syslog_enabled:
            from logpipe.sources.syslog.server import SyslogServer

            self.sources.append(SyslogServer(self, settings.syslog()).start())
        if settings.files:
            from logpipe.sources.files.tailer import FileSource

            for config in settings.files:
                self.sources.append(FileSource(self, config, settings.data_dir / "file_checkpoints").start())

    # intake --------------------------------------------------------------------------------------
    def submit(self, payload: bytes | Records, events: int, source: str = "http", sender: str = "",
               key: str | None = None) -> Future[IngestResult]:
        """Hand a payload on without waiting for room; the future resolves once it is durable.
        ``sender`` is the name of the named token it came with, recorded with its rows. With an
        idempotency ``key``, a retry is answered with the first request's outcome (while this process
        remembers it), and the embedded engine inserts the request on its own with a token of the key
        and body, which ClickHouse deduplicates across restarts."""
        metrics.EVENTS_RECEIVED.labels(component="gateway").inc(events)
        metrics.BYTES_RECEIVED.labels(component="gateway").inc(
            payload.nbytes if isinstance(payload, Records) else len(payload))
        if key is None:
            future = self.engine.submit(payload, events, Provenance(source, sender=sender))
        else:
            token = idempotency_token(sender, key, payload)
            provenance = Provenance(source, sender=sender)
            future = self.recent_keys.submit_once(
                sender, key, token, lambda: self.engine.submit(payload, events, provenance, token))
        future.add_done_callback(_count_ingest_result)
        return future

    # observation ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        components: dict[str, dict[str, Any]] = {"gateway": component(True)}
        if self.store is not None:
            components["store"] = component(self.store.ping(),
                                            backend="embedded" if self.store.embedded else "server")
        components.update(self.engine.components())
        if self.dimensions is not None:  # a sync that failed is retried; its reason is here until one succeeds
            components["dimensions"] = component(True, last_error=self.dimensions.last_error)
        components["simulator"] = {"status": UP if self.simulator.status()["running"] else PAUSED}
        return report(components)

    def stats(self) -> dict[str, float]:
        def value(metric, component_name: str) -> float:
            return metrics.counter_value(metric, component_name)

        return {
            "generated": value(metrics.EVENTS_SENT, "simulator"),
            "accepted": value(metrics.EVENTS_RECEIVED, "gateway"),
            "inserted": value(metrics.EVENTS_SENT, "clickhouse_sink"),
            "dead_lettered": value(metrics.EVENTS_SENT, "dead_letter_sink"),
            "queued": self.engine.queued,
            "freshness_s": metrics.FRESHNESS_SECONDS._value.get(),
        }

    def services(self) -> Services:
        """What the gateway serves of this process."""
        config = self.settings.gateway()
        dead_letters = None if self.store is None else DeadLetters(
            self.store, self, config.ack_timeout_s, parsers={syslog.SOURCE: parse_messages})
        kafka = KafkaOverview(self.settings.kafka_config()) if self.settings.kafka_bootstrap else None
        return Services(config=config, intake=self, store=self.store, health=self.health,
                        simulator=self.simulator, processor=self.processor, history=self.history,
                        dead_letters=dead_letters, kafka=kafka,
                        start=self.start, stop=self.stop)
