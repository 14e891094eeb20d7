"""The composition root: wires the stages of the all-in-one process (``logpipe up``).

Stages know nothing of each other beyond the objects passed in here.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

import pyarrow as pa

from logpipe import metrics
from logpipe.config import Settings
from logpipe.events import Provenance
from logpipe.processing.processor import Processor
from logpipe.simulator.runner import SimulatorRunner
from logpipe.transport.channel import Channel, ChannelClosed, ChannelFull, Envelope, IngestResult
from logpipe.transport.wire import encode_ndjson
from logpipe.warehouse.sink import dead_letter_sink, fact_sink
from logpipe.warehouse.store import Store

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
    def __init__(self, settings: Settings):
        self.settings = settings
        self.started_at = time.time()
        self.store = Store(settings.warehouse())
        self.channel = Channel(settings.queue_max_events)
        self.processor = Processor(self.channel, fact_sink(self.store), dead_letter_sink(self.store),
                                   settings.processor())
        self.simulator = SimulatorRunner(settings.simulator(), self._emit_simulated)
        metrics.register_component("gateway")

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.wait_ready()
        self.store.apply_schema()
        metrics.COMPONENT_UP.labels(component="store").set(1)
        metrics.COMPONENT_UP.labels(component="gateway").set(1)
        self.processor.start()
        self.simulator.start()
        log.info("pipeline started")

    def stop(self) -> None:
        """Graceful: stop the simulator, refuse new intake, drain and flush, close the store."""
        log.info("stopping: simulator")
        self.simulator.stop()
        self.channel.close()
        log.info("stopping: draining %d queued events", self.channel.events)
        self.processor.stop()
        self.store.close()
        metrics.COMPONENT_UP.labels(component="store").set(0)
        log.info("pipeline stopped")

    # intake --------------------------------------------------------------------------------------
    def _emit_simulated(self, table: pa.Table) -> None:
        payload = encode_ndjson(table)
        envelope = Envelope(payload, table.num_rows, Provenance("simulator"))
        while True:
            try:
                self.channel.put(envelope, timeout=0.5)
                return
            except ChannelFull:
                if self.channel.closed:
                    raise ChannelClosed from None

    def submit(self, payload: bytes, events: int, source: str = "http") -> Future[IngestResult]:
        """Hand a payload on without waiting for room; the future resolves once it is durable."""
        future: Future[IngestResult] = Future()
        metrics.EVENTS_RECEIVED.labels(component="gateway").inc(events)
        metrics.BYTES_RECEIVED.labels(component="gateway").inc(len(payload))
        try:
            self.channel.put(Envelope(payload, events, Provenance(source), future), timeout=0)
        except ChannelFull:
            metrics.EVENTS_DROPPED.labels(component="gateway").inc(events)
            raise Overloaded(retry_after_s=1.0) from None
        except ChannelClosed:
            raise ShuttingDown from None
        future.add_done_callback(_count_ingest_result)
        return future

    # observation ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
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
