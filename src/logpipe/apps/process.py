"""``logpipe process``: one Kafka processor per process, and a supervisor for ``--workers N``.

Workers are processes, not threads, so normalization scales across cores; the consumer group
splits the partitions among them (cooperative-sticky), and each serves its own ``/metrics``.
An embedded store belongs to one process: the supervisor opens it and serves it to its workers
(``logpipe+http://``); with a ClickHouse server each worker connects to it directly.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from logpipe.auth.tokens import Role, new_token, open_registry
from logpipe.child_process import stop_with_parent
from logpipe.config import Settings
from logpipe.gateway.app import create_store_app
from logpipe.gateway.server import BackgroundServer
from logpipe.health import component, report
from logpipe.processing.kafka_processor import KafkaProcessor
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.transport.kafka import ensure_topics
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.connect import open_store
from logpipe.warehouse.dimensions import start_sync
from logpipe.warehouse.store import Store

log = logging.getLogger(__name__)
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0)


def local_address(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def open_stage_store(settings: Settings) -> Warehouse:
    """What every stream-processing process opens before consuming: the store (embedded, server, or
    another process's) with its schema, and the topics."""
    store = open_store(settings.warehouse())
    store.wait_ready(60)
    store.apply_schema()
    ensure_topics(settings.kafka_config())
    return store


def stage_health(store: Warehouse, engine: str, engine_up: bool, **details: Any) -> dict[str, Any]:
    return report({engine: component(engine_up, **details), "store": component(store.ping())})


def run_worker(settings: Settings, port: int) -> int:
    """Consume until SIGINT/SIGTERM, then flush and commit; returns the exit code."""
    store = open_stage_store(settings)
    processor = KafkaProcessor(settings.kafka_config(), store, fact_sink(store), dead_letter_sink(store),
                               settings.processor())
    running = threading.Event()
    dimensions = start_sync(store, settings.dimensions(), settings.retention_days)

    def health() -> dict[str, Any]:
        return stage_health(store, "processor", running.is_set(), exceptions=processor.exceptions,
                            last_error=processor.last_error)

    tokens, _ = open_registry(settings.auth())
    server = BackgroundServer(create_store_app(store, health, tokens), settings.http_host, port).start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: processor.stop())
    running.set()
    try:
        processor.run()
    finally:
        running.clear()
        if dimensions is not None:
            dimensions.stop()
        server.stop()
        store.close()
    return 0



@dataclass
class Worker:
    index: int
    port: int
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


class Supervisor:
    """Starts N workers, restarts one that dies, and stops them all gracefully on SIGINT/SIGTERM."""

    def __init__(self, settings: Settings, workers: int, port: int):
        self.settings = settings
        self.port = port
        self.workers = [Worker(i, port + 1 + i) for i in range(workers)]
        self.stopping = threading.Event()
        self.store: Store | None = None
        self.worker_env = dict(os.environ)
        self.tokens, _ = open_registry(settings.auth())
        # Workers call this process (the store it owns, /healthz) with a token of this run's own, handed
        # over in their environment: never on a command line, which ps shows to every user.
        worker_token = new_token()
        self.tokens.allow(worker_token, Role.ADMIN)
        self.worker_env["LOGPIPE_ADMIN_TOKEN"] = worker_token

    def run(self) -> int:
        warehouse = self.settings.warehouse()
        if warehouse.embedded:
            self.store = Store(warehouse)
            self.store.wait_ready()
            self.store.apply_schema()
            address = f"logpipe+http://{local_address(self.settings.http_host)}:{self.port}"
            self.worker_env["LOGPIPE_CLICKHOUSE_URL"] = address
        ensure_topics(self.settings.kafka_config())
        dimensions = (start_sync(self.store, self.settings.dimensions(), self.settings.retention_days)
                      if self.store is not None else None)
        server = BackgroundServer(create_store_app(self.store, self.health, self.tokens), self.settings.http_host,
                                  self.port).start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stopping.set())
        try:
            for worker in self.workers:
                self._spawn(worker)
            while not self.stopping.wait(0.5):
                for worker in self.workers:
                    self._restart_if_dead(worker)
        finally:
            self._stop_workers()
            if dimensions is not None:
                dimensions.stop()
            server.stop()
            if self.store is not None:
                self.store.close()
        return 0

    def _spawn(self, worker: Worker) -> None:
        command = [sys.executable, "-m", "logpipe.cli", "process", "--workers", "1", "--port", str(worker.port)]
        worker.process = subprocess.Popen(command, env=self.worker_env, preexec_fn=stop_with_parent)
        worker.started_at = time.monotonic()
        log.info("worker %d started (pid %d, metrics on port %d)", worker.index, worker.process.pid, worker.port)

    def _restart_if_dead(self, worker: Worker) -> None:
        code = worker.process.poll() if worker.process else 0
        if code is None:
            return
        ran_for = time.monotonic() - worker.started_at
        if ran_for > 60:
            worker.restarts = 0  # it ran a good while: start the backoff over
        if ran_for < RESTART_BACKOFF_S[min(worker.restarts, len(RESTART_BACKOFF_S) - 1)]:
            return
        worker.restarts += 1
        log.warning("worker %d exited with %s; restarting (restart %d)", worker.index, code, worker.restarts)
        self._spawn(worker)

    def _stop_workers(self, timeout_s: float = 60.0) -> None:
        alive = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in alive:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %.0fs; killing it", process.pid, timeout_s)
                process.kill()
                process.wait()

    def health(self) -> dict[str, Any]:
        components = {f"worker-{w.index}": component(w.process is not None and w.process.poll() is None,
                                                     pid=w.process.pid if w.process else None, port=w.port,
                                                     restarts=w.restarts) for w in self.workers}
        if self.store is not None:
            components["store"] = component(self.store.ping())
        return report(components)
