"""What each rule kind measures, per subject, through an ``Observer`` of the pipeline.

The observer is the same whether the watchdog runs inside ``logpipe up`` (the store, the pipeline's
health and the metrics registry of this process) or on its own (``logpipe watch``: the gateway's
``/v1/query``, ``/healthz`` and ``/metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from logpipe import metrics
from logpipe.monitor.rules import Rule
from logpipe.warehouse import queries
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.errors import StoreError

UP_STATES = frozenset({"up"})


@dataclass
class Observer:
    store: Warehouse | None  # None where no store is reachable
    health: Callable[[], dict[str, Any]]
    metrics_text: Callable[[], str]
    counters: dict[str, float] = field(default_factory=dict)  # last totals, for `failures`
    lag_history: list[tuple[float, float]] = field(default_factory=list)  # (time, total lag)

    @property
    def database(self) -> str:
        return self.store.database

    def metric_samples(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals


def http_observer(base_url: str, database: str = "analytics", health_urls: tuple[str, ...] = (),
                  token: str = "") -> Observer:
    """The pipeline as seen from outside, through its gateway's API, with a token of the read role;
    ``health_urls`` are more processes (``logpipe process``, ``logpipe spark``) whose ``/healthz``
    components join the gateway's."""
    from logpipe.warehouse.config import WarehouseConfig
    from logpipe.warehouse.remote import RemoteStore

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=base_url.rstrip("/"), timeout=10, headers=headers)

    def health() -> dict[str, Any]:
        report = client.get("/healthz").json()
        components = dict(report.get("components", {}))
        for url in health_urls:
            target = url.rstrip("/").split("://")[-1]
            try:
                for name, state in client.get(url.rstrip("/") + "/healthz").json().get("components", {}).items():
                    components[f"{name}@{target}"] = state
            except (httpx.HTTPError, ValueError):
                components[target] = {"status": "down"}
        return {**report, "components": components}

    def metrics_text() -> str:
        return client.get("/metrics").text

    store = RemoteStore(WarehouseConfig(url="logpipe+" + base_url.rstrip("/"), database=database, api_token=token))
    return Observer(store, health, metrics_text)


def _rows(observer: Observer, sql: str, parameters: dict[str, Any]) -> list[tuple]:
    return observer.store.query_rows(queries.in_database(sql, observer.database), parameters)[1]


def measure(rule: Rule, observer: Observer) -> dict[str, float]:
    """Subject -> measured value. A subject with too little data to judge is left out."""
    window = {"w": int(rule.window_s), "m": rule.min_events}
    match rule.kind:
        case "health":
            try:
                components = observer.health().get("components", {})
            except (httpx.HTTPError, ValueError):
                return {"gateway": 1.0}
            return {name: 0.0 if state.get("status") in UP_STATES else 1.0 for name, state in components.items()}
        case "error_rate":
            return dict(_rows(observer, queries.ERROR_RATE, window))
        case "latency_p99":
            return dict(_rows(observer, queries.LATENCY_P99, window))
        case "freshness":
            rows = _rows(observer, queries.FRESHNESS, {})
            return {"pipeline": float(rows[0][0])} if rows and rows[0][1] else {}
        case "dead_letters":
            rows = _rows(observer, queries.DEAD_LETTERS_PER_S, window)
            return {"pipeline": float(rows[0][0])}
        case "ingest_drop":
            rows = _rows(observer, queries.INGEST_AGAINST_BASELINE, {**window, "b": int(rule.baseline_s)})
            current, baseline_events = rows[0]
            if baseline_events < max(rule.min_events, 1):
                return {}
            return {"pipeline": float(current) / (baseline_events / rule.baseline_s)}
        case "kafka_lag":
            lag = observer.metric_samples().get(metrics.sample_name(metrics.KAFKA_LAG))
            return {} if lag is None else {"pipeline": lag}
        case "kafka_lag_growth":
            lag = observer.metric_samples().get(metrics.sample_name(metrics.KAFKA_LAG))
            if lag is None:
                return {}
            now = time.monotonic()
            history = observer.lag_history
            history.append((now, lag))
            while len(history) > 1 and history[1][0] <= now - rule.window_s:
                history.pop(0)
            then, earlier = history[0]
            if now - then < rule.window_s * 0.9:
                return {}  # not enough history yet to say it grows
            return {"pipeline": lag - earlier}
        case "failures":
            samples = observer.metric_samples()
            increases = {}
            for name in rule.metrics:
                total = samples.get(name, 0.0)
                previous = observer.counters.setdefault(name, total)
                observer.counters[name] = total
                increases[name.removesuffix("_total")] = total - previous
            return increases
    raise ValueError(f"unknown rule kind {rule.kind}")


def measure_safely(rule: Rule, observer: Observer) -> dict[str, float] | None:
    """None when the rule cannot be evaluated now (no store, store down): its alerts keep their state."""
    if observer.store is None and rule.kind not in ("health", "kafka_lag", "kafka_lag_growth", "failures"):
        return None
    try:
        return measure(rule, observer)
    except (StoreError, httpx.HTTPError):
        return None
