"""Bench scenarios. Each runs in a process of its own (``python -m logpipe.bench.scenarios NAME``),
so its embedded store, peak RSS and CPU time are its own; it prints one JSON result on stdout.

Stages report busy seconds (time spent doing their work); a stage busy for most of the run, or
whose input queue grows, is the bottleneck. Ceilings (a bare librdkafka consumer, a raw ClickHouse
insert of the same batches) are measured in the same run, so stages read as ratios of them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from logpipe import metrics
from logpipe.auth.tokens import Role, new_token
from logpipe.bench.resources import ResourceMonitor, Usage, children
from logpipe.child_process import stop_with_parent
from logpipe.codec.ndjson import encode_ndjson, encode_ndjson_buffer
from logpipe.events import Provenance
from logpipe.memory import configure_allocators
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.local_broker import free_port, start_local_broker, stop_local_broker
from logpipe.warehouse import queries

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
    usage: Usage | None = None
    details: dict[str, Any] = field(default_factory=dict)  # what a scenario measures beside its stages

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
        cpu = self.usage.cpu_s if self.usage else {}
        components = [{"component": name, "cpu_s": seconds, "cores": round(seconds / self.duration_s, 2)}
                      for name, seconds in cpu.items()]
        quantiles = np.quantile(self.freshness, [0.5, 0.95, 0.99]).tolist() if self.freshness else [None] * 3
        return {
            "scenario": self.scenario, "duration_s": round(self.duration_s, 2),
            "inserted_per_s": inserted.events / self.duration_s if inserted else 0.0,
            "freshness_p50_s": quantiles[0], "freshness_p95_s": quantiles[1], "freshness_p99_s": quantiles[2],
            "freshness_samples": len(self.freshness),
            "peak_rss_mb": (self.usage.pipeline_peak_rss_mb if self.usage
                            else round(max(usage.ru_maxrss, children.ru_maxrss) / 1024, 1)),
            "peak_rss_mb_by_process": self.usage.peak_rss_mb if self.usage else {},
            "components": components,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "children_cpu_s": round(children.ru_utime + children.ru_stime, 2),
            "stages": stages, "ceilings": self.ceilings,
            "bottleneck": _bottleneck(growing, busiest, components),
            "notes": self.notes, "details": self.details,
        }


def _bytes(component: str) -> float:
    return metrics.counter_value(metrics.BYTES_RECEIVED, component)


def _bottleneck(growing: list[str], busiest: dict[str, Any] | None, components: list[dict[str, Any]]) -> str | None:
    """A growing input queue names its stage; else, when the machine's cores are all busy, the component
    using most of them; else the stage busy for the largest share of the run."""
    if growing:
        return f"{growing[0]} (input queue grows)"
    cores = sum(c["cores"] for c in components)
    if components and cores >= 0.9 * (os.cpu_count() or 1):
        top = max(components, key=lambda c: c["cores"])
        return f"CPU: {cores:.1f} of {os.cpu_count()} cores busy, most in {top['component']} ({top['cores']:.2f})"
    return f"{busiest['stage']} (busy {busiest['busy_fraction']:.0%})" if busiest else None


def _iso(epoch_s: float) -> str:
    """A marker's event time as producers send it (ISO 8601, UTC, milliseconds), so it takes the same path."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s * 1000) % 1000:03d}Z"


def _store(data_dir: Path, dimensions: bool = True):
    """A fresh store with the schema; ``dimensions`` False: without the views that feed the dimension
    tables, to measure what they cost (the sync is ``_dimension_sync``'s)."""
    from logpipe.warehouse.config import WarehouseConfig
    from logpipe.warehouse.store import Store

    store = Store(WarehouseConfig(data_dir=data_dir))
    store.apply_schema()
    if not dimensions:
        feeding = store.query_rows("SELECT name FROM system.tables WHERE database = {db:String} "
                                   "AND engine = 'MaterializedView' AND startsWith(name, 'dim_')",
                                   {"db": store.database})[1]
        for (view,) in feeding:
            store.command(f"DROP VIEW {store.database}.{view}")
    return store


def _dimension_sync(store, dimensions: bool):
    """The dimension sync an engine runs beside its processor, on the product's interval; None when off."""
    from logpipe.config import Settings
    from logpipe.warehouse.dimensions import start_sync

    settings = Settings()
    return start_sync(store, settings.dimensions(), settings.retention_days) if dimensions else None


def _batches(seed: int, count: int, size: int = BATCH) -> list[pa.Table]:
    generator = TrafficGenerator(seed=seed)
    now = time.time()
    return [generator.generate(size, now - 1, now) for _ in range(count)]


# embedded ---------------------------------------------------------------------------------------
def embedded(duration_s: float, rate: float | None, name: str, dimensions: bool = True) -> Result:
    """generate -> JSON -> channel -> processor (decode, normalize) -> ClickHouse, in one process.

    ``rate`` None offers as much as the pipeline takes (backpressure blocks the generator);
    ``dimensions`` False leaves out the dimension views and sync."""
    from logpipe.config import Settings
    from logpipe.processing.contract import Sinks
    from logpipe.processing.processor import Processor
    from logpipe.processing.sinks import dead_letter_sink, fact_sink
    from logpipe.transport.channel import Channel, ChannelFull, Envelope

    store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-")), dimensions)
    defaults = Settings().processor()  # what `logpipe up` runs with, LOGPIPE_* variables included
    channel = Channel(defaults.queue_max_events, defaults.queue_max_bytes)
    processor = Processor(channel, Sinks(fact_sink(store), [dead_letter_sink(store)]),
                          replace(defaults, flush_interval_s=0.2 if rate else defaults.flush_interval_s))
    generate, encode = Stage("generated"), Stage("serialized (JSON)")
    generator = TrafficGenerator(seed=7)
    stop = threading.Event()
    markers: dict[str, float] = {}
    queue_samples: list[int] = []

    def offer() -> None:
        metrics.name_os_thread()
        chunk = BATCH if rate is None else max(100, int(rate * 0.05))
        next_at, next_marker, sequence = time.perf_counter(), 0.0, 0
        while not stop.is_set():
            now = time.time()
            table = generate.timed(chunk, generator.generate, chunk, now - 0.05, now)
            generate.bytes += table.nbytes  # Arrow
            payload = encode.timed(chunk, encode_ndjson_buffer, table)
            encode.bytes += len(payload)
            if rate is not None and time.perf_counter() >= next_marker:
                marker = f"marker-{sequence}"
                sequence += 1
                markers[marker] = time.time()
                line = json.dumps({"event_id": marker, "ts": _iso(markers[marker]), "service": "bench", "status": 200})
                payload = payload.to_pybytes() + line.encode() + b"\n"
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
                rows = store.query_rows(queries.in_database(queries.MARKERS_SEEN, store.database),
                                        {"ids": pending})[1]
                now = time.time()
                for (marker,) in rows:
                    seen[marker] = now
            queue_samples.append(channel.events)
            time.sleep(0.05)

    monitor = ResourceMonitor()
    monitor.watch("logpipe", os.getpid())
    monitor.start()
    processor.start()
    sync = _dimension_sync(store, dimensions)
    threads = [threading.Thread(target=offer, name="logpipe-generator"), threading.Thread(target=watch_markers)]
    started = time.perf_counter()
    inserted_before = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink")
    bytes_before = {name: _bytes(name) for name in ("processor", "clickhouse_sink")}
    for thread in threads:
        thread.start()
    time.sleep(duration_s)
    inserted = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink") - inserted_before
    result.duration_s = time.perf_counter() - started
    result.usage = monitor.stop()
    stop.set()
    for thread in threads:
        thread.join(30)
    processor.stop()
    if sync is not None:
        sync.stop()
    write = metrics.WRITE_SECONDS.labels(component="clickhouse_sink")._sum.get()
    normalize_busy = metrics.NORMALIZE_SECONDS.labels(component="processor")._sum.get()
    result.stages = [generate, encode,
                     Stage("normalized", int(inserted), int(_bytes("processor") - bytes_before["processor"]),
                           normalize_busy),
                     Stage("inserted", int(inserted), int(_bytes("clickhouse_sink") - bytes_before["clickhouse_sink"]),
                           write)]
    result.freshness = [seen[m] - sent for m, sent in markers.items() if m in seen]
    half = len(queue_samples) // 2
    if half:
        first, second = np.mean(queue_samples[:half]), np.mean(queue_samples[half:])
        # growth that matters: by more than a twentieth of the queue's capacity, not from 10 to 20 events
        if second - first > defaults.queue_max_events / 20:
            result.queue_growth["normalized"] = (second - first) / max(first, 1.0)
    _wait_for_merges(store)  # the scenario's merge backlog would take CPU from the ceiling's process
    store.close()
    result.ceilings["inserted"] = clickhouse_ceiling(dimensions=dimensions)
    result.notes.append(f"offered {'max' if rate is None else f'{rate:,.0f} ev/s'}; markers every "
                        f"{MARKER_EVERY_S}s; queue mean {np.mean(queue_samples or [0]):,.0f} events; "
                        f"{_dimensions_note(dimensions)}")
    return result


def _in_fresh_process(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in a spawned helper process: its memory, threads and engine are not the scenario's."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as helper:
        return helper.submit(work, *args).result()


def clickhouse_ceiling(batches: int = 10, dimensions: bool = True) -> float:
    """The store's own insert ceiling, in a helper process with a fresh data directory: inserts of
    already-normalized 200,000-row batches back to back (only the inserts are timed, and the merges
    they start run beside them), with no scenario's threads, memory or merge backlog around; with the
    dimension views or without them, as the scenario ran."""
    return _in_fresh_process(_insert_ceiling, batches, dimensions)


def _insert_ceiling(batches: int, dimensions: bool = True) -> float:
    configure_allocators()
    store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-ceiling-")), dimensions)
    generator = TrafficGenerator(seed=11)
    tables = []
    for _ in range(3):  # distinct batches, each inserted several times under its own token
        now = time.time()
        tables.append(normalize_ndjson(encode_ndjson(generator.generate(200_000, now - 1, now)),
                                       Provenance("bench")).facts)
    store.insert("fact_log", tables[0], f"ceiling-warm-up-{time.time_ns()}")  # first-insert set-up is not the rate
    rows, busy = 0, 0.0
    for i in range(batches):
        table = tables[i % len(tables)]
        started = time.perf_counter()
        store.insert("fact_log", table, f"ceiling-{time.time_ns()}-{i}")
        busy += time.perf_counter() - started
        rows += table.num_rows
    store.close()
    return rows / busy


def _wait_for_merges(store, timeout_s: float = 60.0) -> None:
    """Let the scenario's background merges finish before the ceiling is measured beside them."""
    deadline = time.monotonic() + timeout_s
    while store.scalar(queries.MERGES_RUNNING) and time.monotonic() < deadline:
        time.sleep(0.5)


# served: `logpipe up` or `logpipe spark` in a process of its own ------------------------------------
# The served process's tokens, given in its environment as an operator would, and to the load processes
# in theirs (never on a command line).
TOKENS = {role: new_token() for role in Role}
TOKEN_ENV = {f"LOGPIPE_{role.upper()}_TOKEN": token for role, token in TOKENS.items()}


def _headers(role: Role = Role.READ) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def _scrape(base: str) -> dict[tuple[str, str], float]:
    """(metric, component) -> value from a logpipe process's /metrics (histograms as _sum and _count)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10, headers=_headers()).text):
        for sample in family.samples:
            if sample.name.endswith(("_total", "_sum", "_count")) or family.type == "gauge":
                values[(sample.name, sample.labels.get("component", ""))] = sample.value
    return values


def _delta(before: dict, after: dict, name: str, component: str) -> float:
    return after.get((name, component), 0.0) - before.get((name, component), 0.0)


def _answers(url: str, deadline: float, process: Any = None) -> bool:
    """Whether ``url`` answers 200 before ``deadline`` (monotonic), asked every 0.3 s; an error if
    ``process`` exits first."""
    import httpx

    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"logpipe {' '.join(process.args[3:])} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2, headers=_headers()).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _serve(command: str, env: dict[str, str], port: int, timeout_s: float = 180, args: tuple[str, ...] = ()) -> Any:
    import subprocess

    ports = {"LOGPIPE_OTLP_PORT": str(free_port()), "LOGPIPE_SYSLOG_PORT": str(free_port())}
    process = subprocess.Popen([sys.executable, "-m", "logpipe.cli", command, *args],
                               env={**os.environ, **ports, **env, **TOKEN_ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=stop_with_parent)
    if _answers(f"http://127.0.0.1:{port}/healthz", time.monotonic() + timeout_s, process):
        return process
    process.kill()
    raise RuntimeError(f"logpipe {command} did not become healthy in {timeout_s:.0f}s")


class MarkerProbe:
    """Freshness through the HTTP API: one marker event posted every MARKER_EVERY_S, and the moment
    each is first seen by a query for it in ClickHouse (event time to visible, measured)."""

    def __init__(self, base: str, query_base: str | None = None, syslog_port: int | None = None):
        self.base = base
        self.query_base = query_base or base  # where the store is served: the processor, when split
        # with a syslog port, markers travel as the load does: RFC 5424 over TCP, found by their message
        self.syslog_port = syslog_port
        self._syslog: Any = None  # the markers' TCP connection, from start to stop
        self._seen_sql = queries.in_database(
            queries.MARKERS_SEEN if syslog_port is None else queries.SYSLOG_MARKERS_SEEN, "analytics")
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]

    def start(self, warm_up_timeout_s: float = 120.0) -> MarkerProbe:
        """Once an event goes all the way through (with Kafka: the consumer has joined its group and
        has its partitions), start posting markers, so the figures are the steady state's."""
        import httpx

        with httpx.Client(base_url=self.base, timeout=30, headers=_headers(Role.ADMIN)) as client, \
                httpx.Client(base_url=self.query_base, timeout=30, headers=_headers(Role.ADMIN)) as store:
            if self.syslog_port is not None:
                import socket

                self._syslog = socket.create_connection(("127.0.0.1", self.syslog_port), timeout=30)
            self._send(client, "warm-up", time.time())
            deadline = time.monotonic() + warm_up_timeout_s
            while time.monotonic() < deadline:
                rows = store.post("/v1/query", json={"sql": self._seen_sql, "parameters": {"ids": ["warm-up"]}}
                                  ).json()["rows"]
                if rows:
                    break
                time.sleep(0.1)
            else:
                raise TimeoutError(f"the warm-up event was not visible within {warm_up_timeout_s:.0f}s")
        for thread in self._threads:
            thread.start()
        return self

    def _post(self) -> None:
        import httpx

        with httpx.Client(base_url=self.base, timeout=30, headers=_headers(Role.INGEST)) as client:
            sequence = 0
            while not self._stop.wait(MARKER_EVERY_S):
                marker, now = f"marker-{sequence}", time.time()
                sequence += 1
                try:
                    self._send(client, marker, now)
                    self.sent[marker] = now
                except (httpx.HTTPError, OSError):
                    pass

    def _send(self, client: Any, marker: str, at: float) -> None:
        """One marker with event time ``at``: over syslog when there is a port, else posted; raises
        unless it was taken."""
        if self._syslog is not None:
            self._syslog.sendall(f"<14>1 {_iso(at)} bench-host bench - - - {marker}\n".encode())
            return
        line = json.dumps({"event_id": marker, "ts": _iso(at), "service": "bench", "status": 200}).encode()
        client.post("/v1/logs", content=line + b"\n").raise_for_status()

    def _poll(self) -> None:
        import httpx

        with httpx.Client(base_url=self.query_base, timeout=30, headers=_headers(Role.READ)) as client:
            while not self._stop.wait(0.05):
                pending = [m for m in list(self.sent) if m not in self.seen]
                if not pending:
                    continue
                try:
                    rows = client.post("/v1/query", json={"sql": self._seen_sql, "parameters": {"ids": pending}}
                                       ).json()["rows"]
                except (httpx.HTTPError, KeyError, ValueError):
                    continue
                now = time.time()
                for (marker,) in rows:
                    self.seen.setdefault(marker, now)

    def stop(self) -> list[float]:
        return [delay for _, delay in self.stop_timed()]

    def stop_timed(self) -> list[tuple[float, float]]:
        """(epoch seconds sent, seconds to visible) of each marker seen."""
        self._stop.set()
        for thread in self._threads:
            thread.join(35)
        if self._syslog is not None:
            self._syslog.close()
        return [(sent, self.seen[m] - sent) for m, sent in self.sent.items() if m in self.seen]


def _wait_for_workers(bases: list[str], timeout_s: float = 120) -> None:
    """Until every processor worker serves its metrics."""
    deadline = time.monotonic() + timeout_s
    for base in bases:
        if not _answers(f"{base}/metrics", deadline):
            raise RuntimeError(f"no processor worker at {base} within {timeout_s:.0f}s")


def _scrape_all(bases: list[str]) -> dict[tuple[str, str], float]:
    """The metrics of several processes, summed: the pipeline's stages, wherever they run."""
    values: dict[tuple[str, str], float] = {}
    for base in bases:
        for key, value in _scrape(base).items():
            values[key] = values.get(key, 0.0) + value
    return values


def _loaded(result: Result, monitor: ResourceMonitor, servers: list[Any], bases: list[str], duration_s: float,
            loads: list[list[str]], query_base: str | None = None, syslog_port: int | None = None,
            ) -> tuple[dict, dict, list[dict[str, Any]]]:
    """Run the load processes (``python -m`` each argument list) against the servers at ``bases`` with
    freshness markers beside them (posted to the first, or sent to ``syslog_port``; looked up at
    ``query_base``, by default the same), then stop the servers: the metrics before and after (summed
    over the servers), and what each load process reports. ``result`` gets the duration, resource use and freshness."""
    import subprocess

    before = _scrape_all(bases)
    probe = MarkerProbe(bases[0], query_base, syslog_port).start()
    monitor.start()
    started = time.perf_counter()
    loaders = [subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, **TOKEN_ENV}, preexec_fn=stop_with_parent) for argv in loads]
    for i, loader in enumerate(loaders):
        monitor.watch(f"load generator {i}", loader.pid, pipeline=False)
    outputs = [json.loads(loader.communicate(timeout=duration_s + 120)[0]) for loader in loaders]
    result.duration_s = time.perf_counter() - started
    after = _scrape_all(bases)
    result.usage = monitor.stop()
    time.sleep(2 * MARKER_EVERY_S)
    result.freshness = probe.stop()
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(60)
    return before, after, outputs


def http_load(duration_s: float, name: str, kafka: bool, clients: int = 2, concurrency: int = 8,
              batch: int = 1000, rate: float = 0.0, gateways: int = 1, workers: int = 1) -> Result:
    """NDJSON batches of 1,000 from separate load processes against logpipe in processes of its own:
    `logpipe up` with the in-process channel (http-ingest); or, through a Kafka broker, the production
    topology (kafka-*): ``gateways`` `logpipe gateway` processes producing, `logpipe process --workers
    N` consuming into the store it owns, as deploy/docker-compose.yml runs them; with bare librdkafka
    producer and consumer ceilings on the same broker. Load process i posts to gateway i mod
    ``gateways``."""

    data_dir = tempfile.mkdtemp(prefix="logpipe-bench-http-")
    env = {"LOGPIPE_DATA_DIR": data_dir, "LOGPIPE_SIM_ENABLED": "false", "LOGPIPE_WATCH_ENABLED": "false"}
    result = Result(name, duration_s)
    monitor = ResourceMonitor()
    broker = None
    servers: list[Any] = []
    try:
        if kafka:
            bootstrap, broker = _broker()
            config, _ = _prefill(bootstrap, 0)
            env.update(LOGPIPE_KAFKA_BOOTSTRAP=bootstrap, LOGPIPE_KAFKA_TOPIC_PREFIX=config.topic_prefix,
                       LOGPIPE_KAFKA_GROUP_ID=config.group_id)
            result.ceilings = _kafka_ceilings(bootstrap, 200_000)
            if broker is not None:
                monitor.watch("broker (tansu)", broker.pid, pipeline=False)
            store_port = free_port()
            servers.append(_serve("process", {**env, "LOGPIPE_PROCESS_PORT": str(store_port)}, store_port,
                                  args=("--workers", str(workers))))
            monitor.watch("logpipe process", servers[-1].pid, with_descendants=workers > 1)
            query_base = f"http://127.0.0.1:{store_port}"
            # with workers, each serves its own metrics on the ports after the supervisor's
            worker_bases = [f"http://127.0.0.1:{store_port + 1 + i}" for i in range(workers)] if workers > 1 else []
            ports = [free_port() for _ in range(gateways)]
            for i, port in enumerate(ports):
                # each gateway a data directory of its own: only the processor opens the store
                gateway_env = {**env, "LOGPIPE_HTTP_PORT": str(port),
                               "LOGPIPE_DATA_DIR": tempfile.mkdtemp(prefix="logpipe-bench-gateway-")}
                servers.append(_serve("gateway", gateway_env, port))
                monitor.watch(f"logpipe gateway {i}" if gateways > 1 else "logpipe gateway", servers[-1].pid)
        else:
            ports = [free_port()]
            servers.append(_serve("up", {**env, "LOGPIPE_HTTP_PORT": str(ports[0])}, ports[0]))
            monitor.watch("logpipe up", servers[-1].pid)
            query_base, worker_bases = None, []
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        _wait_for_workers(worker_bases)
        before, after, outputs = _loaded(result, monitor, servers,
                                         bases + ([query_base] if query_base else []) + worker_bases,
                                         duration_s, [
            ["logpipe.bench.load", bases[seed % len(bases)], str(duration_s), str(batch), str(seed),
             str(concurrency), str(rate / clients)] for seed in range(clients)], query_base)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
        if broker is not None:
            stop_local_broker(broker)
    events, received = metrics.sample_name(metrics.EVENTS_SENT, "_total"), \
        metrics.sample_name(metrics.BYTES_RECEIVED, "_total")
    processor = "kafka_processor" if kafka else "processor"
    accepted = Stage("accepted by the gateway", sum(o["accepted"] for o in outputs), sum(o["bytes"] for o in outputs))
    result.stages = [accepted]
    if kafka:
        # the accepted lines are what is produced, one message each
        produced = Stage("produced to Kafka", int(_delta(before, after, events, "kafka_producer")), accepted.bytes)
        consumed = Stage("consumed", int(_delta(before, after, metrics.sample_name(metrics.EVENTS_RECEIVED, "_total"),
                                                "kafka_processor")),
                         int(_delta(before, after, received, "kafka_processor")))
        result.stages += [produced, consumed]
        result.queue_growth["consumed"] = (produced.events - consumed.events) / max(consumed.events, 1)  # lag grows
    result.stages += _pipeline_stages(before, after, processor)
    result.notes.append(f"{clients} load processes of {concurrency} concurrent senders, "
                        f"{f'{rate:,.0f} ev/s offered' if rate else 'as fast as answered'}, NDJSON batches of {batch}, "
                        f"429 answers: {sum(o['throttled'] for o in outputs)}; markers every {MARKER_EVERY_S}s")
    if kafka:
        polls = _delta(before, after, metrics.sample_name(metrics.KAFKA_RECORD_AGE_SECONDS, "_count"), "")
        if polls:
            age = _delta(before, after, metrics.sample_name(metrics.KAFKA_RECORD_AGE_SECONDS, "_sum"), "") / polls
            result.notes.append(f"a record's mean age when the processor polls it (producer to consumer): {age:.2f}s")
        result.notes.append(f"bare librdkafka ceilings on the same broker: producer "
                            f"{result.ceilings['produced to Kafka']:,.0f} msg/s, consumer "
                            f"{result.ceilings['consumed']:,.0f} msg/s")
    return result


def _pipeline_stages(before: dict, after: dict, processor: str = "processor") -> list[Stage]:
    """What the embedded processor normalized and the sink inserted between two scrapes."""
    events, received = metrics.sample_name(metrics.EVENTS_SENT, "_total"), \
        metrics.sample_name(metrics.BYTES_RECEIVED, "_total")
    return [
        Stage("normalized", int(_delta(before, after, events, processor)),
              int(_delta(before, after, received, processor)),
              _delta(before, after, metrics.sample_name(metrics.NORMALIZE_SECONDS, "_sum"), processor)),
        Stage("inserted", int(_delta(before, after, events, "clickhouse_sink")),
              int(_delta(before, after, received, "clickhouse_sink")),
              _delta(before, after, metrics.sample_name(metrics.WRITE_SECONDS, "_sum"), "clickhouse_sink"))]


# logpipe up, as users run it ------------------------------------------------------------------------
SOAK_MINUTES = 10
# the length of a reported "minute": 60 s; shorter only to try the scenarios out
MINUTE_S = float(os.environ.get("LOGPIPE_BENCH_MINUTE_S", "60"))
UP_MAX_RATE = 2_000_000  # more than the process takes: the simulator offers what it can generate


def up_soak(duration_s: float, name: str, rate: float | None) -> Result:
    """`logpipe up` as the CLI builds it, in its own process: the simulator at a steady ``rate`` (no
    time-of-day curve, no incidents; None:
    as fast as it generates), the watchdog on, an open dashboard tab refreshing every panel every 5 s,
    and HTTP markers for freshness. Fixed rates run SOAK_MINUTES, up-max ``duration_s``; each minute
    is reported."""
    from logpipe.bench import soak

    minutes_s = duration_s if rate is None else max(duration_s, SOAK_MINUTES * MINUTE_S)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"LOGPIPE_HTTP_PORT": str(port), "LOGPIPE_DATA_DIR": tempfile.mkdtemp(prefix=f"logpipe-bench-{name}-"),
           "LOGPIPE_SIM_ENABLED": "true", "LOGPIPE_SIM_DIURNAL": "false", "LOGPIPE_SIM_SEED": "5",
           "LOGPIPE_SIM_RATE": str(rate or UP_MAX_RATE), "LOGPIPE_WATCH_ENABLED": "true"}
    result = Result(name, minutes_s)
    monitor = ResourceMonitor()
    server = _serve("up", env, port)
    monitor.watch("logpipe up", server.pid)
    try:
        before = _scrape(base)
        probe = MarkerProbe(base).start()
        monitor.start()
        started = time.perf_counter()
        run_started_epoch = time.time()
        tab = soak.DashboardTab(base, _headers(Role.READ), MINUTE_S).start(started)
        sampler = soak.MinuteSampler(base, _headers(Role.READ), server.pid, _scrape, MINUTE_S).start(started)
        time.sleep(minutes_s)
        deadline = time.monotonic() + 5
        while len(sampler.minutes) < int(minutes_s // MINUTE_S) and time.monotonic() < deadline:
            time.sleep(0.1)  # the last minute's row, sampled at its end
        result.duration_s = time.perf_counter() - started
        after = _scrape(base)
        result.usage = monitor.stop()
        sampler.stop()
        tab.stop()
        timed = probe.stop_timed()
    finally:
        server.terminate()
        server.wait(60)
    result.freshness = [delay for _, delay in timed]
    minutes = soak.per_minute(sampler.minutes, [(sent - run_started_epoch, delay) for sent, delay in timed],
                              tab.answers_ms, MINUTE_S)
    steady = soak.steadiness(minutes)
    worst = max((m["freshness_p99_s"] for m in minutes if m["freshness_p99_s"] is not None), default=None)
    result.details = {"minutes": minutes, "second_half_over_first": steady, "worst_minute_freshness_p99_s": worst,
                      "panel_refresh_failures": tab.failures}
    result.stages = [Stage("generated by the simulator", int(_delta(before, after, metrics.sample_name(
        metrics.EVENTS_SENT, "_total"), "simulator"))), *_pipeline_stages(before, after)]
    result.notes.append(
        f"{'as fast as the simulator generates' if rate is None else f'{rate:,.0f} ev/s offered'}, watchdog on, "
        f"every panel refreshed every {soak.PANEL_REFRESH_S:.0f} s; {len(minutes)} minutes; worst minute's "
        f"freshness p99 {worst} s; second half's rate over the first's: {steady}; "
        f"peak RSS {max((m['rss_mb'] for m in minutes), default=0)} MB")
    return result


# sources --------------------------------------------------------------------------------------------
def source_ingest(duration_s: float, name: str, kind: str, clients: int = 2, concurrency: int = 8) -> Result:
    """OTLP/HTTP protobuf (otlp-ingest) or syslog over TCP (syslog-tcp) from separate load processes
    against `logpipe up` in its own process, run as a collector of that source alone (the simulator and
    the other sources off), with freshness measured by markers beside them: sent as the load is for
    syslog, posted over HTTP for OTLP."""

    port, otlp_port, syslog_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"LOGPIPE_HTTP_PORT": str(port), "LOGPIPE_DATA_DIR": tempfile.mkdtemp(prefix=f"logpipe-bench-{kind}-"),
           "LOGPIPE_SIM_ENABLED": "false", "LOGPIPE_WATCH_ENABLED": "false",
           "LOGPIPE_OTLP_ENABLED": str(kind == "otlp").lower(), "LOGPIPE_SYSLOG_ENABLED": str(kind != "otlp").lower(),
           "LOGPIPE_OTLP_PORT": str(otlp_port), "LOGPIPE_SYSLOG_PORT": str(syslog_port)}
    target = f"http://127.0.0.1:{otlp_port}/v1/logs" if kind == "otlp" else str(syslog_port)
    result = Result(name, duration_s)
    monitor = ResourceMonitor()
    server = _serve("up", env, port)
    monitor.watch("logpipe up", server.pid)
    before, after, outputs = _loaded(result, monitor, [server], [base], duration_s, [
        ["logpipe.bench.source_load", kind, target, str(duration_s), str(seed), str(concurrency)]
        for seed in range(clients)], syslog_port=None if kind == "otlp" else syslog_port)
    what = "accepted by the OTLP receiver" if kind == "otlp" else "sent to the syslog listener"
    result.stages = [Stage(what, sum(o["accepted"] for o in outputs), sum(o["bytes"] for o in outputs)),
                     *_pipeline_stages(before, after)]
    shape = ("protobuf ExportLogsServiceRequests of 8,192 records (the Collector's batch size)" if kind == "otlp"
             else "RFC 5424 messages over TCP, newline-framed, in blocks of 2,000")
    result.notes.append(f"{clients} load processes of {concurrency} concurrent senders, {shape}, as fast as taken; "
                        f"throttled answers: {sum(o['throttled'] for o in outputs)}; only this source on; "
                        f"markers every {MARKER_EVERY_S}s, {'over HTTP' if kind == 'otlp' else 'as syslog over TCP'}")
    return result


def file_tail(duration_s: float, lines: int = 3_000_000) -> Result:
    """An nginx access log of ``lines`` lines, written beside the pipeline and moved into the file
    source's glob at once, tailed end to end into ClickHouse by `logpipe up`: the rate is its lines
    over the time from the file's appearance to its last row inserted (at most ``duration_s`` x 5)."""
    from logpipe.bench.source_load import write_nginx_log

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = Path(tempfile.mkdtemp(prefix="logpipe-bench-files-"))
    logs = data_dir / "logs"
    logs.mkdir()
    env = {"LOGPIPE_HTTP_PORT": str(port), "LOGPIPE_DATA_DIR": str(data_dir), "LOGPIPE_SIM_ENABLED": "false",
           "LOGPIPE_WATCH_ENABLED": "false", "LOGPIPE_OTLP_ENABLED": "false", "LOGPIPE_SYSLOG_ENABLED": "false",
           "LOGPIPE_FILES": json.dumps([{"include": [str(logs / "*.log")], "parser": "nginx", "name": "bench"}])}
    staged = data_dir / "access.log.staged"
    size = write_nginx_log(staged, lines)
    result = Result("file-tail", duration_s)
    monitor = ResourceMonitor()
    server = _serve("up", env, port)
    monitor.watch("logpipe up", server.pid)
    before = _scrape(base)
    inserted = metrics.sample_name(metrics.EVENTS_SENT, "_total")
    monitor.start()
    started = time.perf_counter()
    staged.rename(logs / "access.log")
    deadline = time.monotonic() + 5 * duration_s
    after = before
    while time.monotonic() < deadline:
        time.sleep(0.2)
        after = _scrape(base)
        if _delta(before, after, inserted, "clickhouse_sink") >= lines:
            break
    result.duration_s = time.perf_counter() - started
    result.usage = monitor.stop()
    server.terminate()
    server.wait(60)
    errors = _delta(before, after, metrics.sample_name(metrics.EVENTS_ERRORS, "_total"), "file")
    result.stages = [Stage("read by the file source", int(_delta(before, after, metrics.sample_name(
        metrics.EVENTS_RECEIVED, "_total"), "file")), size), *_pipeline_stages(before, after)]
    result.notes.append(f"{lines:,} nginx combined lines ({size / 1e6:,.0f} MB) with $request_time; "
                        f"dead letters: {errors:,.0f}; freshness not sampled (the file is read as fast as it goes)")
    return result


# Kafka ----------------------------------------------------------------------------------------------
def _broker() -> tuple[str, Any]:
    """LOGPIPE_KAFKA_BOOTSTRAP when set, else a local tansu broker started for the run."""
    bootstrap = os.environ.get("LOGPIPE_KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    return start_local_broker()


def _prefill(bootstrap: str, events: int, partitions: int = 3) -> tuple[Any, float]:
    """Topics of their own for this run, filled with ``events`` through logpipe's producer."""
    from logpipe.transport.kafka import KafkaConfig, KafkaProducerTransport, ensure_topics

    config = KafkaConfig(bootstrap=bootstrap, topic_prefix=f"bench{time.time_ns() % 10**9}.",
                         group_id=f"bench-{time.time_ns()}", partitions=partitions)
    ensure_topics(config)
    if events == 0:
        return config, 0.0
    producer = KafkaProducerTransport(config)
    started = time.perf_counter()
    for table in _batches(3, max(1, events // BATCH)):
        producer.send(table).result(120)
    produced_per_s = events / (time.perf_counter() - started)
    producer.close()
    return config, produced_per_s


def _kafka_ceilings(bootstrap: str, events: int) -> dict[str, float]:
    """Bare librdkafka on the same broker, on topics of their own: a producer sending the same JSON
    lines with logpipe's producer settings, then a consumer reading them back."""
    from confluent_kafka import Producer

    from logpipe.transport.kafka import message_keys, producer_settings
    from logpipe.transport.topics import topic_names

    config, _ = _prefill(bootstrap, 0)
    producer = Producer(config.client(**producer_settings(config)))
    topic = topic_names(config.topic_prefix)[0]
    tables = _batches(5, max(1, events // BATCH))
    encoded = [(encode_ndjson(t).splitlines(), message_keys(t)) for t in tables]
    count, started = 0, time.perf_counter()
    for lines, keys in encoded:
        for value, key in zip(lines, keys, strict=True):
            while True:
                try:
                    producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    producer.poll(0.05)
        count += len(lines)
    producer.flush(120)
    producer_rate = count / (time.perf_counter() - started)
    return {"produced to Kafka": producer_rate, "consumed": _bare_consumer_rate(config, count)}


def _prefill_and_measure_ceiling(bootstrap: str, events: int, partitions: int = 3) -> tuple[Any, float, float]:
    config, produced_per_s = _prefill(bootstrap, events, partitions)
    return config, produced_per_s, _bare_consumer_rate(config, events)


def _prefilled_with_ceiling(bootstrap: str, events: int) -> tuple[Any, float, float]:
    """Pre-fill topics and measure the bare consumer on them in a helper process, so the memory
    their producer and consumer held is not counted against the drain that follows."""
    return _in_fresh_process(_prefill_and_measure_ceiling, bootstrap, events)


def _bare_consumer_rate(config, events: int) -> float:
    """The ceiling: librdkafka with the processor's consumer settings reading the same topics, doing
    nothing with the messages."""
    from confluent_kafka import Consumer

    from logpipe.transport.kafka import consumer_settings
    from logpipe.transport.topics import subscription_pattern

    consumer = Consumer(config.client(**consumer_settings(f"ceiling-{time.time_ns()}")))
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


def _dimensions_note(dimensions: bool) -> str:
    return ("dimension views and sync on (the product's default)" if dimensions
            else "without the dimension views and sync")


def drain_embedded(duration_s: float, events: int | None = None, dimensions: bool = True,
                   name: str = "drain-embedded") -> Result:
    """The Kafka processor draining a pre-filled topic, against a bare consumer on the same broker.
    The topic holds 40,000 events per second of ``duration_s`` (at least 1,000,000): a drain of a few
    seconds swings by a fifth with whatever else the two cores do meanwhile (engine merges, the broker)."""
    from logpipe.config import Settings
    from logpipe.processing.kafka_processor import KafkaProcessor
    from logpipe.processing.sinks import dead_letter_sink, fact_sink

    events = events or max(1_000_000, int(40_000 * duration_s))
    bootstrap, broker = _broker()
    try:
        config, produced_per_s, ceiling = _prefilled_with_ceiling(bootstrap, events)
        store = _store(Path(tempfile.mkdtemp(prefix="logpipe-bench-drain-")), dimensions)
        processor = KafkaProcessor(config, store, fact_sink(store), dead_letter_sink(store),
                                   Settings().processor())  # what `logpipe process` runs with
        sync = _dimension_sync(store, dimensions)
        thread = threading.Thread(target=processor.run, name="logpipe-kafka-processor")
        monitor = ResourceMonitor()
        monitor.watch("logpipe process", os.getpid())
        monitor.start()
        launched = time.perf_counter()
        thread.start()
        deadline = launched + max(duration_s, 300)
        while not metrics.counter_value(metrics.EVENTS_RECEIVED, "kafka_processor") and time.perf_counter() < deadline:
            time.sleep(0.01)
        started = time.perf_counter()  # timed, as the bare consumer is, from the first messages polled
        while metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink") < events and time.perf_counter() < deadline:
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        usage = monitor.stop()
        processor.stop()
        thread.join(60)
        if sync is not None:
            sync.stop()
        inserted = metrics.counter_value(metrics.EVENTS_SENT, "clickhouse_sink")
        result = Result(name, elapsed, usage=usage)
        consumed = int(metrics.counter_value(metrics.EVENTS_RECEIVED, "kafka_processor"))
        result.stages = [Stage("consumed", consumed, int(_bytes("kafka_processor"))),
                         Stage("normalized", consumed, int(_bytes("kafka_processor")), metrics.NORMALIZE_SECONDS.labels(
                             component="kafka_processor")._sum.get()),
                         Stage("inserted", int(inserted), int(_bytes("clickhouse_sink")), metrics.WRITE_SECONDS.labels(
                             component="clickhouse_sink")._sum.get())]
        result.ceilings = {"consumed": ceiling, "inserted": ceiling}
        result.notes.append(f"{events:,} events pre-filled at {produced_per_s:,.0f} ev/s; the bare librdkafka "
                            f"consumer read them at {ceiling:,.0f} ev/s (the ceiling); both timed from their first "
                            f"poll with messages (joining the group took {started - launched:.1f}s); "
                            f"{_dimensions_note(dimensions)}")
        store.close()
        return result
    finally:
        if broker is not None:
            stop_local_broker(broker)


def drain_workers(duration_s: float, workers: int, partitions: int = 12) -> Result:
    """`logpipe process --workers N`, as users run it, draining topics of ``partitions`` partitions
    pre-filled with 40,000 events per second of ``duration_s`` (at least 1,000,000): the group splits
    the partitions among the workers, and the supervisor serves the embedded store they insert into.
    Timed from the first rows in the store to the last, polling its row count through the API."""
    import httpx

    events = max(1_000_000, int(40_000 * duration_s))
    bootstrap, broker = _broker()
    process = None
    try:
        config, produced_per_s, ceiling = _in_fresh_process(_prefill_and_measure_ceiling, bootstrap, events,
                                                             partitions)
        port = free_port()
        env = {"LOGPIPE_KAFKA_BOOTSTRAP": bootstrap, "LOGPIPE_KAFKA_TOPIC_PREFIX": config.topic_prefix,
               "LOGPIPE_KAFKA_GROUP_ID": config.group_id, "LOGPIPE_PROCESS_PORT": str(port),
               "LOGPIPE_DATA_DIR": tempfile.mkdtemp(prefix="logpipe-bench-workers-")}
        process = _serve("process", env, port, args=("--workers", str(workers)))
        monitor = ResourceMonitor()
        monitor.watch("logpipe process", process.pid, with_descendants=True)  # the supervisor and its workers
        sql = queries.in_database(queries.FACT_ROWS, "analytics")
        deadline = time.monotonic() + max(duration_s, 300)
        started, first_rows, rows = 0.0, None, 0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=_headers()) as client:
            while rows < events and time.monotonic() < deadline:
                try:
                    rows = int(client.post("/v1/query", json={"sql": sql}).json()["rows"][0][0])
                except (httpx.HTTPError, KeyError, ValueError, IndexError):
                    rows = 0
                if rows and first_rows is None:
                    started, first_rows = time.perf_counter(), rows
                    monitor.start()
                time.sleep(0.2)
        elapsed = time.perf_counter() - started if first_rows is not None else 0.0
        result = Result(f"drain-workers-{workers}", elapsed, usage=monitor.stop() if first_rows is not None else None)
        result.stages = [Stage("inserted", rows - (first_rows or 0))]
        result.ceilings = {"inserted": ceiling}
        result.notes.append(f"{workers} worker process(es) over {partitions} partitions a topic; {events:,} "
                            f"events pre-filled at {produced_per_s:,.0f} ev/s; {rows:,} in the store at the end; "
                            f"the bare librdkafka consumer read them at {ceiling:,.0f} ev/s")
        return result
    finally:
        if process is not None:
            process.terminate()
            process.wait(60)
        if broker is not None:
            stop_local_broker(broker)


def drain_spark(duration_s: float, events: int = 2_000_000) -> Result:
    """`logpipe spark` (local[2]) draining the same kind of pre-filled topic, in its own process.

    The job runs with its default settings: micro-batches of at most 500,000 offsets
    (``LOGPIPE_SPARK_MAX_OFFSETS_PER_TRIGGER``), so the drain spans four of them. The rate is taken
    from the end of the first micro-batch to the last row inserted, so JVM and query start-up
    (reported apart) do not count against it; the JVM still compiles its hot code during the
    batches that follow."""
    from logpipe.config import Settings

    bootstrap, broker = _broker()
    try:
        config, produced_per_s, ceiling = _prefilled_with_ceiling(bootstrap, events)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {"LOGPIPE_KAFKA_BOOTSTRAP": bootstrap, "LOGPIPE_KAFKA_TOPIC_PREFIX": config.topic_prefix,
               "LOGPIPE_PROCESS_PORT": str(port), "LOGPIPE_DATA_DIR": tempfile.mkdtemp(prefix="logpipe-bench-spark-")}
        launched = time.perf_counter()
        spark = _serve("spark", env, port)
        monitor = ResourceMonitor()
        monitor.watch("spark driver (python)", spark.pid)
        for pid in children(spark.pid):
            monitor.watch("spark JVM and its Python workers", pid, with_descendants=True)
        monitor.start()
        inserted, first_at, first_rows, first_busy = 0.0, None, 0.0, 0.0
        first_batch = min(events, Settings.model_fields["spark_max_offsets_per_trigger"].default or events)
        deadline = time.perf_counter() + max(duration_s, 600)
        while inserted < events and time.perf_counter() < deadline:
            values = _scrape(base)
            inserted = values.get((metrics.sample_name(metrics.EVENTS_SENT, "_total"), "clickhouse_sink"), 0.0)
            if inserted >= first_batch and first_at is None:  # the first micro-batch is written whole
                first_at, first_rows = time.perf_counter(), inserted
                monitor.count_cpu_from_now()  # the rate's window, so cores busy are of the same seconds
                first_busy = values.get((metrics.sample_name(metrics.WRITE_SECONDS, "_sum"), "clickhouse_sink"), 0.0)
            time.sleep(0.05)
        finished = time.perf_counter()
        usage = monitor.stop()
        values = _scrape(base)
        spark.terminate()
        spark.wait(120)
    finally:
        if broker is not None:
            stop_local_broker(broker)
    first_at = first_at or finished
    result = Result("drain-spark", finished - first_at, usage=usage)
    busy = values.get((metrics.sample_name(metrics.WRITE_SECONDS, "_sum"), "clickhouse_sink"), 0.0) - first_busy
    result.stages = [Stage("inserted", int(inserted - first_rows), 0, busy)]
    result.ceilings = {"inserted": ceiling}
    result.notes.append(f"{events:,} events pre-filled at {produced_per_s:,.0f} ev/s; bare consumer "
                        f"{ceiling:,.0f} ev/s; start-up to the first rows inserted {first_at - launched:.1f}s "
                        f"(JVM, query, the first micro-batch of {first_rows:,.0f}); rate over the "
                        f"{inserted - first_rows:,.0f} rows inserted after it")
    return result


def search(duration_s: float) -> Result:
    """The logs page's queries on a store of 50 million rows (bench/search.py), and the insert ceiling
    with the search indexes and without them, alternating, each in a fresh process."""
    from logpipe.bench import search as bench

    measured = bench.run_store()
    ceilings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(2):
        for indexes in (True, False):
            ceilings["with" if indexes else "without"].append(_in_fresh_process(bench.insert_ceiling, indexes))
    with_indexes, without = float(np.median(ceilings["with"])), float(np.median(ceilings["without"]))
    result = Result("search", measured["build_s"])
    result.details = {**measured, "insert_ceiling_with_indexes": round(with_indexes),
                      "insert_ceiling_without_indexes": round(without),
                      "insert_ceiling_ratio": round(with_indexes / without, 3), "insert_ceiling_rounds": ceilings}
    result.notes.append(f"store of {measured['rows']:,} rows over 24 h in {measured['parts']} parts, "
                        f"{measured['disk_mb']:,} MB on disk of which {measured['index_mb']:,} MB search indexes, "
                        f"and {measured['trace_table_mb']:,} MB in the trace table beside it, "
                        f"built in {measured['build_s']:.0f} s")
    return result


def monitoring_cost(duration_s: float) -> Result:
    """Each watchdog check's and dashboard panel's query time on stores of 10 and 100 million rows
    (bench/monitoring.py), each store built and read in a fresh process."""
    from logpipe.bench import monitoring

    started = time.perf_counter()
    small, large = (_in_fresh_process(monitoring.measure, rows) for rows in monitoring.SIZES)
    result = Result("monitoring-cost", time.perf_counter() - started)
    result.details = monitoring.compare(small, large)
    worst = max(result.details["time_ratio"].items(), key=lambda item: item[1])
    result.notes.append(f"stores of {small['rows']:,} and {large['rows']:,} rows; the query that grew most: "
                        f"{worst[0]}, x{worst[1]} for x{result.details['rows_ratio']} the rows")
    return result


SCENARIOS: dict[str, Callable[[float], Result]] = {
    "embedded-max": lambda d: embedded(d, None, "embedded-max"),
    "embedded-10k": lambda d: embedded(d, 10_000, "embedded-10k"),
    "embedded-50k": lambda d: embedded(d, 50_000, "embedded-50k"),
    "kafka-max": lambda d: http_load(d, "kafka-max", kafka=True),
    "kafka-20k": lambda d: http_load(d, "kafka-20k", kafka=True, rate=20_000),
    "kafka-50k": lambda d: http_load(d, "kafka-50k", kafka=True, rate=50_000),
    "kafka-max-2-gateways": lambda d: http_load(d, "kafka-max-2-gateways", kafka=True, gateways=2),
    "kafka-max-2-workers": lambda d: http_load(d, "kafka-max-2-workers", kafka=True, workers=2),
    "http-ingest": lambda d: http_load(d, "http-ingest", kafka=False),
    "drain-embedded": drain_embedded,
    "embedded-max-no-dimensions": lambda d: embedded(d, None, "embedded-max-no-dimensions", dimensions=False),
    "drain-embedded-no-dimensions": lambda d: drain_embedded(d, dimensions=False, name="drain-embedded-no-dimensions"),
    "drain-spark": drain_spark,
    "drain-workers-1": lambda d: drain_workers(d, 1),
    "drain-workers-2": lambda d: drain_workers(d, 2),
    "file-tail": file_tail,
    # one Collector's defaults: batches of 8,192, 10 exporters sending at once (sending_queue.num_consumers)
    "otlp-ingest": lambda d: source_ingest(d, "otlp-ingest", "otlp", concurrency=5),
    "syslog-tcp": lambda d: source_ingest(d, "syslog-tcp", "syslog"),
    "search": search,
    "monitoring-cost": monitoring_cost,
    "up-max": lambda d: up_soak(d, "up-max", None),
    "up-100k": lambda d: up_soak(d, "up-100k", 100_000),
    "up-200k": lambda d: up_soak(d, "up-200k", 200_000),
}
# the sources beside the NDJSON path, in one run
SOURCES_GROUP = ("http-ingest", "file-tail", "otlp-ingest", "syslog-tcp")
# what the dimension views and sync cost (issue 21): each scenario with them and without, in one run
DIMENSIONS_GROUP = ("embedded-max", "embedded-max-no-dimensions", "drain-embedded", "drain-embedded-no-dimensions")
# `logpipe up` as users run it (issue 24)
SOAK_SCENARIOS = ("up-max", "up-100k", "up-200k")
# the Kafka path's scale-out (issue 23): processor workers over 12 partitions, and two gateways
SCALE_OUT_GROUP = ("drain-workers-1", "drain-workers-2", "kafka-max", "kafka-max-2-gateways", "kafka-max-2-workers")
DIMENSION_PAIRS = (("embedded-max", "embedded-max-no-dimensions"), ("drain-embedded", "drain-embedded-no-dimensions"))


if __name__ == "__main__":
    configure_allocators()
    scenario, duration = sys.argv[1], float(sys.argv[2])
    sys.stdout.write(json.dumps(SCENARIOS[scenario](duration).as_json(), default=float) + "\n")
