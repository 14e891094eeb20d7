"""Whole batches of simulated service logs, built with numpy and Arrow (no per-event Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.events import TS_TYPE, random_hex
from logpipe.simulator.incidents import Effects, IncidentSchedule
from logpipe.simulator.model import (
    HOSTS_PER_SERVICE,
    LATENCY_FACTOR_4XX,
    LATENCY_FACTOR_5XX,
    REGION_P,
    REGIONS,
    SERVICES,
    STACK_TRACE_TEMPLATE,
    STATUS_4XX,
    STATUS_4XX_P,
    STATUS_5XX,
    STATUS_5XX_P,
    USER_POOL,
    Service,
    flatten,
)

OUTAGE_CODE = "SERVICE_UNAVAILABLE"
OUTAGE_LATENCY_FACTOR = 20.0


def _sorted_uniform(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """n uniform draws on [low, high) in ascending order without sorting: the normalized running
    sum of n + 1 exponential gaps has the law of sorted uniforms."""
    gaps = np.cumsum(rng.standard_exponential(n + 1))
    return low + (high - low) * (gaps[:n] / gaps[n])


def _popular_first(rng: np.random.Generator, n: int, pool: int, exponent: float = 0.8) -> np.ndarray:
    """Indices into a pool of users where user k is drawn with weight about k^-exponent (a few users
    make most requests), by inverting the weights' integral rather than searching a table."""
    span = pool ** (1.0 - exponent) - 1.0
    k = (1.0 + rng.random(n) * span) ** (1.0 / (1.0 - exponent))
    return np.minimum(k.astype(np.int64) - 1, pool - 1)


def _take(vocabulary: pa.Array, indices: np.ndarray) -> pa.DictionaryArray:
    """Left dictionary-encoded: the JSON encoder renders each vocabulary word once instead of per row."""
    return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32()), vocabulary)


class TrafficGenerator:
    """Deterministic for a seed: the same seed and the same calls give the same events."""

    def __init__(self, seed: int = 0, services: tuple[Service, ...] = SERVICES, id_prefix: str | None = None):
        self.rng = np.random.default_rng(seed)
        self.model = flatten(services)
        self.id_prefix = id_prefix if id_prefix is not None else f"sim-{seed:x}-"
        self.sequence = 0
        m = self.model
        n_services = len(m.services)
        self.schedule = IncidentSchedule(list(m.services))
        self._services = pa.array(m.services)
        self._methods = pa.array(m.endpoint_method)
        self._paths = pa.array(m.endpoint_path)
        self._regions = pa.array(REGIONS)
        self._hosts = pa.array([f"{s}-{k}" for s in m.services for k in range(HOSTS_PER_SERVICE)])
        self._users = pa.array([f"u{k:06d}" for k in range(USER_POOL)])
        self._ips = pa.array([f"10.{(k >> 8) & 255}.{k & 255}.{(k * 7) % 254 + 1}" for k in range(4096)])
        ok_status = []
        for method, path in zip(m.endpoint_method, m.endpoint_path, strict=True):
            ok_status.append(204 if method == "DELETE" else 201 if method == "POST" and path.endswith("s") else 200)
        self._ok_status = np.array(ok_status, dtype=np.uint16)
        # messages per (service, status class): 0 ok, 1 client error, 2 server error
        self._request_messages = pa.array([
            text for s in m.services for text in
            (f"{s}: request completed", f"{s}: request rejected", f"{s}: request failed")
        ])
        codes = sorted({c for cs in m.error_codes for c in cs} | {OUTAGE_CODE})
        self._codes = pa.array(["", *codes])
        self._code_index = {c: i + 1 for i, c in enumerate(codes)}
        self._service_code_ids = [np.array([self._code_index[c] for c in cs]) for cs in m.error_codes]
        # one stack trace per (service, code)
        self._traces = pa.array([
            STACK_TRACE_TEMPLATE.format(code=code, service=s, summary=code.lower().replace("_", " "))
            for s in m.services for code in ["", *codes]
        ])
        self._n_codes = len(codes) + 1
        self._n_services = n_services

    def effects_at(self, now_s: float) -> Effects:
        return self.schedule.effects(now_s)

    def generate(self, n: int, start_s: float, end_s: float, effects: Effects | None = None) -> pa.Table:
        """n request logs with event times spread over [start_s, end_s), plus the app error logs they cause.

        Columns are the wire fields of ``logpipe.events`` (no pipeline-stamped fields); those drawn from
        a vocabulary (service, endpoint, user, message...) are dictionary-encoded.
        """
        m, rng = self.model, self.rng
        if effects is None:
            effects = self.effects_at((start_s + end_s) / 2)
        endpoint_p = m.endpoint_p * (m.service_share * effects.volume_factor)[m.endpoint_service]
        endpoint_p /= endpoint_p.sum()
        ep = rng.choice(len(endpoint_p), size=n, p=endpoint_p).astype(np.int32)
        svc = m.endpoint_service[ep]

        p5 = np.where(np.isnan(effects.p5xx_override), m.p5xx, effects.p5xx_override)[svc]
        p4 = np.minimum(m.p4xx[svc], 1.0 - p5)
        u = rng.random(n)
        is5 = (u < p5) | effects.outage[svc]
        is4 = ~is5 & (u < p5 + p4)
        status = self._ok_status[ep].copy()
        status[is4] = rng.choice(STATUS_4XX, size=int(is4.sum()), p=STATUS_4XX_P)
        status[is5] = rng.choice(STATUS_5XX, size=int(is5.sum()), p=STATUS_5XX_P)
        outage_rows = effects.outage[svc]
        status[outage_rows] = 503

        latency = np.exp(m.latency_mu[ep] + m.latency_sigma[ep] * rng.standard_normal(n))
        latency *= effects.latency_factor[svc]
        latency[is5] *= LATENCY_FACTOR_5XX
        latency[is4] *= LATENCY_FACTOR_4XX
        latency[outage_rows] *= OUTAGE_LATENCY_FACTOR
        size = np.exp(m.bytes_mu[ep] + 0.5 * rng.standard_normal(n)).astype(np.uint64)
        size[is4 | is5] = 180

        ts_ms = _sorted_uniform(rng, n, start_s * 1000.0, end_s * 1000.0).astype(np.int64)
        status_class = np.where(is5, 2, np.where(is4, 1, 0))
        code_ids = np.zeros(n, dtype=np.int32)
        for s_index in range(self._n_services):
            rows = is5 & (svc == s_index)
            code_ids[rows] = rng.choice(self._service_code_ids[s_index], size=int(rows.sum()))
        code_ids[outage_rows] = self._code_index[OUTAGE_CODE]
        users = _popular_first(rng, n, USER_POOL)
        hosts = svc * HOSTS_PER_SERVICE + rng.integers(0, HOSTS_PER_SERVICE, n)
        regions = rng.choice(len(REGIONS), size=n, p=REGION_P)
        ips = rng.integers(0, 4096, n)
        trace_ids = random_hex(rng, n, 8)

        requests = {
            "ts": ts_ms,
            "service": svc,
            "kind": np.zeros(n, dtype=np.int8),
            "level": np.where(is5, 3, np.where(is4, 2, 1)).astype(np.int8),
            "ep": ep,
            "status": status,
            "latency_ms": latency.astype(np.float32),
            "bytes": size,
            "user": users,
            "trace_id": trace_ids,
            "ip": ips,
            "host": hosts,
            "region": regions,
            "code": code_ids,
            "message": svc * 3 + status_class,
        }
        # An application error log beside a share of the 5xx responses, same trace.
        app = np.flatnonzero(is5 & (rng.random(n) < m.app_error_per_5xx[svc]))
        k = len(app)
        errors = {
            "ts": ts_ms[app] + 1,
            "service": svc[app],
            "kind": np.ones(k, dtype=np.int8),
            "level": np.full(k, 3, dtype=np.int8),
            "ep": ep[app],
            "status": np.zeros(k, dtype=np.uint16),
            "latency_ms": np.zeros(k, dtype=np.float32),
            "bytes": np.zeros(k, dtype=np.uint64),
            "user": users[app],
            "trace_id": trace_ids.take(pa.array(app)),
            "ip": ips[app],
            "host": hosts[app],
            "region": regions[app],
            "code": code_ids[app],
            "message": None,
        }
        return pa.concat_tables([self._to_table(requests, n, False), self._to_table(errors, k, True)])

    def _to_table(self, cols: dict, n: int, app_errors: bool) -> pa.Table:
        ids = np.arange(self.sequence, self.sequence + n, dtype=np.int64)
        self.sequence += n
        event_id = pc.binary_join_element_wise(self.id_prefix, pc.cast(pa.array(ids), pa.string()), "")
        if app_errors:
            message = _take(self._traces, cols["service"] * self._n_codes + cols["code"])
        else:
            message = _take(self._request_messages, cols["message"])
        return pa.table({
            "event_id": event_id,
            "ts": pa.array(cols["ts"], type=pa.int64()).cast(TS_TYPE),
            "service": _take(self._services, cols["service"]),
            "kind": _take(pa.array(["request", "app_error"]), cols["kind"]),
            "level": _take(pa.array(["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]), cols["level"]),
            "method": _take(self._methods, cols["ep"]),
            "endpoint": _take(self._paths, cols["ep"]),
            "status": pa.array(cols["status"], type=pa.uint16()),
            "latency_ms": pa.array(cols["latency_ms"], type=pa.float32()),
            "bytes": pa.array(cols["bytes"], type=pa.uint64()),
            "user_id": _take(self._users, cols["user"]),
            "trace_id": cols["trace_id"],
            "client_ip": _take(self._ips, cols["ip"]),
            "host": _take(self._hosts, cols["host"]),
            "region": _take(self._regions, cols["region"]),
            "error_code": _take(self._codes, cols["code"]),
            "message": message,
        })
