"""Bench scenarios. Each runs in a process of its own (``python -m logpipe.bench.scenarios NAME``),
so its embedded store, peak RSS and CPU time are its own; it prints one JSON result on stdout.

Stages report busy seconds (time spent doing their work); a stage busy for most of the run, or
whose input queue grows, is the bottleneck. Ceilings (a bare librdkafka consumer, a raw ClickHouse
insert of the same batches) are measured in the same run, so stages read as ratios of them.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.local_broker import free_port, start_local_broker, stop_local_broker
from logpipe.transport.wire import encode_ndjson

BATCH = 50_000
MARKER_EVERY_S = 0.25


@dataclass
class Stage:
    name: str
    events: int = 0
    bytes: int = 0
    busy_s: float = 0.0

    def timed(self, events: int, work: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        result = work(*args)
        self.busy_s += time.perf_counter() - started
        self.events += events
        return result


@dataclass
class Result:
    scenario: str
    duration_s: float
    stages: list[Stage] = field(default_factory=list)
    freshness: list[float] = field(default_factory=list)
    ceilings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    queue_growth: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        inserted = next((s for s in self.stages if s.name == "inserted"), None)
        stages = [{"stage": s.name, "events_per_s": s.events / self.duration_s,
                   "mb_per_s": s.bytes / self.duration_s / 1e6, "busy_s": round(s.busy_s, 2),
                   "busy_fraction": round(s.busy_s / self.duration_s, 3)} for s in self.stages]
        for stage in stages:
            ceiling = self.ceilings.get(stage["stage"])
            if ceiling:
                stage["ceiling_per_s"] = ceiling
                stage["ratio_of_ceiling"] = round(stage["events_per_s"] / ceiling, 3)
        busiest = max(stages, key=lambda s: s["busy_fraction"], default=None)
        growing = [name for name, growth in self.queue_growth.items() if growth > 0.2]
        quantiles = np.quantile(self.freshness, [0.5, 0.95, 0.99]).tolist() if self.freshness else [None] * 3
        return {
            "scenario": self.scenario, "duration_s": round(self.duration_s, 2),
            "inserted_per_s": inserted.events / self.duration_s if inserted else 0.0,
            "freshness_p50_s": quantiles[0], "freshness_p95_s": quantiles[1], "freshness_p99_s": quantiles[2],
            "freshness_samples": len(self.freshness),
            "peak_rss_mb": round(max(usage.ru_maxrss, children.ru_maxrss) / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "children_cpu_s": round(children.ru_utime + children.ru_stime, 2),
            "stages": stages, "ceilings": self.ceilings,
            "bottleneck": (f"{growing[0]} (input queue grows)" if growing
                           else f"{busiest['stage']} (busy {busiest['busy_fraction']:.0%})" if busiest else None),
            "notes": self.notes,
        }


def _store(data_dir: Path):
    from logpipe.warehouse.config import WarehouseConfig
    from logpipe.warehouse.store import Store

    store = Store(WarehouseConfig(data_dir=data_dir))
    store.apply_schema()
    return store


def _batches(seed: int, count: int, size: int = BATCH) -> list[pa.Table]:
    generator = TrafficGenerator(seed=seed)
    now = time.time()
    return [generator.generate(size, now - 1, now) for _ in range(count)]


# embedded ---------------------------------------------------------------------------------------
def embedded(duration_s: float, rate: float | None, name: str) -> Result:
    """generate -> JSON -> channel -> processor (decode, normalize) -> ClickHouse, in one process.

    ``rate`` None offers as much as the pipeline takes (backpressure blocks the generator)."""
    from logpipe import metrics
    from logpipe.processing.config import ProcessorConfig
    from logpipe.processing.processor import Processor
    from logpipe.transport.channel import Channel, ChannelFull, Envelope
    from logpipe.warehouse.sink import dead_letter_sink, fact_sink

    store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-")))
    channel = Channel(400_000)
    processor = Processor(channel, fact_sink(store), dead_letter_sink(store),
                          ProcessorConfig(batch_max_rows=200_000, flush_interval_s=0.2 if rate else 1.0))
    generate, encode = Stage("generated"), Stage("serialized (JSON)")
    generator = TrafficGenerator(seed=7)
    stop = threading.Event()
    markers: dict[str, float] = {}
    queue_samples: list[int] = []

    def offer() -> None:
        chunk = BATCH if rate is None else max(100, int(rate * 0.05))
        next_at, next_marker, sequence = time.perf_counter(), 0.0, 0
        while not stop.is_set():
            now = time.time()
            table = generate.timed(chunk, generator.generate, chunk, now - 0.05, now)
            payload = encode.timed(chunk, encode_ndjson, table)
            encode.bytes += len(payload)
            if rate is not None and time.perf_counter() >= next_marker:
                marker = f"marker-{sequence}"
                sequence += 1
                markers[marker] = time.time()
                payload += json.dumps({"event_id": marker, "ts": markers[marker], "service": "bench",
                                       "status": 200}).encode() + b"\n"
                next_marker = time.perf_counter() + MARKER_EVERY_S
            envelope = Envelope(payload, chunk, Provenance("bench"))
            while not stop.is_set():
                try:
                    channel.put(envelope, timeout=0.2)
                    break
                except ChannelFull:
                    continue
            if rate is not None:
                next_at += chunk / rate
                time.sleep(max(0.0, next_at - time.perf_counter()))

    result = Result(name, duration_s)
    seen: dict[str, float] = {}

    def watch_markers() -> None:
        while not stop.is_set():
            pending = [m for m in markers if m not in seen]
            if pending:
                rows = store.query_rows(f"SELECT event_id FROM {store.database}.fact_log WHERE service = 'bench' "
                                        "AND event_id IN {ids:Array(String)}", {"ids": pending})[1]
                now = time.time()
                for (marker,) in rows:
                    seen[marker] = now
            queue_samples.append(channel.events)
            time.sleep(0.05)

    processor.start()
    threads = [threading.Thread(target=offer), threading.Thread(target=watch_markers)]
    started = time.perf_counter()
    inserted_before = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink")
    for thread in threads:
        thread.start()
    time.sleep(duration_s)
    inserted = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink") - inserted_before
    result.duration_s = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    processor.stop()
    write = metrics.WRITE_SECONDS.labels(component="clickhouse_sink")._sum.get()
    normalize_busy = metrics.NORMALIZE_SECONDS.labels(component="processor")._sum.get()
    result.stages = [generate, encode, Stage("normalized", int(inserted), 0, normalize_busy),
                     Stage("inserted", int(inserted), 0, write)]
    result.freshness = [seen[m] - sent for m, sent in markers.items() if m in seen]
    half = len(queue_samples) // 2
    if half:
        first, second = np.mean(queue_samples[:half]), np.mean(queue_samples[half:])
        result.queue_growth["normalized"] = (second - first) / max(first, 1.0)
    result.ceilings["inserted"] = clickhouse_ceiling(store)
    result.notes.append(f"offered {'max' if rate is None else f'{rate:,.0f} ev/s'}; markers every "
                        f"{MARKER_EVERY_S}s; queue mean {np.mean(queue_samples or [0]):,.0f} events")
    store.close()
    return result


def clickhouse_ceiling(store, batches: int = 6) -> float:
    """Raw inserts of already-normalized batches of 200,000 rows: the store's own ceiling (only the
    insert is timed; one batch is in memory at a time)."""
    generator = TrafficGenerator(seed=11)
    rows, busy = 0, 0.0
    for i in range(batches):
        now = time.time()
        table = normalize_ndjson(encode_ndjson(generator.generate(200_000, now - 1, now)), Provenance("bench")).facts
        started = time.perf_counter()
        store.insert("fact_log", table, f"ceiling-{time.time_ns()}-{i}")
        busy += time.perf_counter() - started
        rows += table.num_rows
    return rows / busy


# HTTP ---------------------------------------------------------------------------------------------
def http_ingest(duration_s: float, clients: int = 4, batch: int = 1000) -> Result:
    """NDJSON batches of 1,000 from separate load processes against `logpipe up` (its own process)."""
    import subprocess

    import httpx

    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="logpipe-bench-http-")
    env = {**os.environ, "LOGPIPE_HTTP_PORT": str(port), "LOGPIPE_DATA_DIR": data_dir, "LOGPIPE_SIM_ENABLED": "false",
           "LOGPIPE_WATCH_ENABLED": "false"}
    server = subprocess.Popen([sys.executable, "-m", "logpipe.cli", "up"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    loaders = [subprocess.Popen([sys.executable, "-m", "logpipe.bench.load", base, str(duration_s), str(batch),
                                 str(seed)], stdout=subprocess.PIPE, text=True) for seed in range(clients)]
    outputs = [json.loads(loader.communicate(timeout=duration_s + 120)[0]) for loader in loaders]
    accepted = sum(o["accepted"] for o in outputs)
    sent_bytes = sum(o["bytes"] for o in outputs)
    time.sleep(2)
    inserted = httpx.post(f"{base}/v1/query", content=b"SELECT count() FROM analytics.fact_log",
                          timeout=60).json()["rows"][0][0]
    server.terminate()
    server.wait(60)
    result = Result("http-ingest", duration_s)
    result.stages = [Stage("accepted by the gateway", accepted, sent_bytes),
                     Stage("inserted", inserted)]
    result.notes.append(f"{clients} load processes, NDJSON batches of {batch}, "
                        f"429 answers: {sum(o['throttled'] for o in outputs)}")
    return result


# Kafka ----------------------------------------------------------------------------------------------
def _broker() -> tuple[str, Any]:
    """LOGPIPE_KAFKA_BOOTSTRAP when set, else a local tansu broker started for the run."""
    bootstrap = os.environ.get("LOGPIPE_KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    return start_local_broker()


def _prefill(bootstrap: str, events: int) -> tuple[Any, float]:
    from logpipe.transport.kafka import KafkaConfig, KafkaProducerTransport, ensure_topics

    config = KafkaConfig(bootstrap=bootstrap, topic_prefix=f"bench{time.time_ns() % 10**6}.",
                         group_id=f"bench-{time.time_ns()}")
    ensure_topics(config)
    producer = KafkaProducerTransport(config)
    started = time.perf_counter()
    for table in _batches(3, max(1, events // BATCH)):
        producer.send(table).result(120)
    produced_per_s = events / (time.perf_counter() - started)
    producer.close()
    return config, produced_per_s


def _bare_consumer_rate(config, events: int) -> float:
    """The ceiling: librdkafka reading the same topics, doing nothing with the messages."""
    from confluent_kafka import Consumer

    from logpipe.transport.topics import subscription_pattern

    consumer = Consumer(config.client(**{"group.id": f"ceiling-{time.time_ns()}", "auto.offset.reset": "earliest",
                                         "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                                         "max.partition.fetch.bytes": 10 * 1024 * 1024}))
    consumer.subscribe([subscription_pattern(config.topic_prefix)])
    count, started, idle_since = 0, None, time.perf_counter()
    while count < events and time.perf_counter() - idle_since < 30:
        messages = consumer.consume(20_000, 0.5)
        if messages:
            started = started or time.perf_counter()
            count += sum(1 for m in messages if m.error() is None)
            idle_since = time.perf_counter()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / max(elapsed, 1e-9)


def drain_embedded(duration_s: float, events: int = 400_000) -> Result:
    """The Kafka processor draining a pre-filled topic, against a bare consumer on the same broker."""
    from logpipe import metrics
    from logpipe.processing.config import ProcessorConfig
    from logpipe.processing.kafka_processor import KafkaProcessor
    from logpipe.warehouse.sink import dead_letter_sink, fact_sink

    bootstrap, broker = _broker()
    try:
        config, produced_per_s = _prefill(bootstrap, events)
        ceiling = _bare_consumer_rate(config, events)
        store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-drain-")))
        processor = KafkaProcessor(config, store, fact_sink(store), dead_letter_sink(store),
                                   ProcessorConfig(batch_max_rows=200_000, flush_interval_s=1.0))
        thread = threading.Thread(target=processor.run)
        started = time.perf_counter()
        thread.start()
        deadline = started + max(duration_s, 300)
        while metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink") < events and time.perf_counter() < deadline:
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        processor.stop()
        thread.join(60)
        inserted = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink")
        result = Result("drain-embedded", elapsed)
        consumed = int(metrics.counter_value(metrics.EVENTS_RECEIVED, "kafka_processor"))
        result.stages = [Stage("produced to Kafka (prefill)", int(produced_per_s * elapsed)),
                         Stage("consumed", consumed),
                         Stage("normalized", consumed, 0, metrics.NORMALIZE_SECONDS.labels(
                             component="kafka_processor")._sum.get()),
                         Stage("inserted", int(inserted), 0, metrics.WRITE_SECONDS.labels(
                             component="clickhouse_sink")._sum.get())]
        result.ceilings = {"consumed": ceiling, "inserted": ceiling}
        result.notes.append(f"{events:,} events pre-filled at {produced_per_s:,.0f} ev/s; the bare librdkafka "
                            f"consumer read them at {ceiling:,.0f} ev/s (the ceiling)")
        store.close()
        return result
    finally:
        if broker is not None:
            stop_local_broker(broker)


SCENARIOS: dict[str, Callable[[float], Result]] = {
    "embedded-max": lambda d: embedded(d, None, "embedded-max"),
    "embedded-10k": lambda d: embedded(d, 10_000, "embedded-10k"),
    "embedded-50k": lambda d: embedded(d, 50_000, "embedded-50k"),
    "http-ingest": http_ingest,
    "drain-embedded": drain_embedded,
}


if __name__ == "__main__":
    scenario, duration = sys.argv[1], float(sys.argv[2])
    sys.stdout.write(json.dumps(SCENARIOS[scenario](duration).as_json(), default=float) + "\n")
