"""The traffic model: services, endpoints, error rates, latency and the diurnal curve.

Numbers are chosen to look like a small commerce backend; tests check the generator
reproduces them within tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    weight: float  # share of the service's traffic
    latency_median_ms: float
    latency_sigma: float  # of the log-normal
    bytes_median: float = 2_000.0


@dataclass(frozen=True)
class Service:
    name: str
    share: float  # share of all request traffic
    error_rate_4xx: float
    error_rate_5xx: float
    endpoints: tuple[Endpoint, ...]
    app_error_per_5xx: float = 0.5  # probability that a 5xx also writes an ERROR application log
    error_codes: tuple[str, ...] = ("INTERNAL",)


SERVICES: tuple[Service, ...] = (
    Service("auth", 0.35, 0.06, 0.005, (
        Endpoint("POST", "/v1/login", 0.45, 45.0, 0.45, 600),
        Endpoint("POST", "/v1/token/refresh", 0.35, 12.0, 0.35, 400),
        Endpoint("POST", "/v1/logout", 0.10, 8.0, 0.30, 200),
        Endpoint("GET", "/v1/users/{id}", 0.10, 18.0, 0.40, 1_500),
    ), error_codes=("AUTH_BACKEND_TIMEOUT", "TOKEN_STORE_UNAVAILABLE")),
    Service("order", 0.30, 0.03, 0.01, (
        Endpoint("GET", "/v1/orders/{id}", 0.40, 25.0, 0.50, 3_000),
        Endpoint("GET", "/v1/orders", 0.25, 60.0, 0.55, 12_000),
        Endpoint("POST", "/v1/orders", 0.25, 120.0, 0.50, 1_200),
        Endpoint("DELETE", "/v1/orders/{id}", 0.10, 40.0, 0.45, 300),
    ), error_codes=("ORDER_DB_DEADLOCK", "INVENTORY_TIMEOUT")),
    Service("payment", 0.15, 0.02, 0.02, (
        Endpoint("POST", "/v1/payments", 0.55, 250.0, 0.55, 900),
        Endpoint("GET", "/v1/payments/{id}", 0.30, 30.0, 0.40, 1_100),
        Endpoint("POST", "/v1/refunds", 0.15, 300.0, 0.60, 800),
    ), error_codes=("PSP_DECLINED_UPSTREAM", "PSP_TIMEOUT", "LEDGER_WRITE_FAILED")),
    Service("notify", 0.20, 0.01, 0.008, (
        Endpoint("POST", "/v1/notifications/email", 0.50, 80.0, 0.60, 300),
        Endpoint("POST", "/v1/notifications/push", 0.40, 35.0, 0.50, 250),
        Endpoint("GET", "/v1/notifications/{id}", 0.10, 10.0, 0.35, 700),
    ), error_codes=("SMTP_UNAVAILABLE", "PUSH_GATEWAY_ERROR")),
)

STATUS_2XX = np.array([200, 201, 204], dtype=np.uint16)
STATUS_4XX = np.array([400, 401, 403, 404, 409, 429], dtype=np.uint16)
STATUS_4XX_P = np.array([0.25, 0.25, 0.10, 0.25, 0.10, 0.05])
STATUS_5XX = np.array([500, 502, 503, 504], dtype=np.uint16)
STATUS_5XX_P = np.array([0.50, 0.20, 0.15, 0.15])

# Errors are slower: upstream timeouts; client errors fail fast.
LATENCY_FACTOR_5XX = 3.0
LATENCY_FACTOR_4XX = 0.6

REGIONS = ("ap-northeast-2", "us-east-1", "eu-west-1")
REGION_P = np.array([0.6, 0.25, 0.15])
HOSTS_PER_SERVICE = 3
USER_POOL = 50_000

# Requests per hour of day relative to the daily mean: a night trough, a morning
# ramp, a lunch bump and an evening peak.
DIURNAL_WEIGHTS = np.array([
    0.35, 0.25, 0.20, 0.18, 0.20, 0.30, 0.55, 0.85, 1.15, 1.30, 1.35, 1.40,
    1.50, 1.40, 1.30, 1.25, 1.25, 1.30, 1.45, 1.60, 1.65, 1.45, 1.05, 0.65,
])
DIURNAL_WEIGHTS = DIURNAL_WEIGHTS / DIURNAL_WEIGHTS.mean()


def diurnal_factor(epoch_s: np.ndarray | float) -> np.ndarray:
    """Traffic multiplier at the given UTC times, linearly interpolated between hours (mean 1)."""
    hours = (np.asarray(epoch_s, dtype=np.float64) / 3600.0) % 24.0
    extended = np.append(DIURNAL_WEIGHTS, DIURNAL_WEIGHTS[0])
    return np.interp(hours, np.arange(25), extended)


STACK_TRACE_TEMPLATE = (
    "{code}: {summary}\n"
    "Traceback (most recent call last):\n"
    '  File "/app/{service}/handlers.py", line 142, in handle\n'
    "    result = await self.backend.call(request)\n"
    '  File "/app/{service}/backend.py", line 88, in call\n'
    "    raise BackendError(\"{summary}\")\n"
    "{service}.backend.BackendError: {summary}"
)


@dataclass
class FlatModel:
    """The model flattened into per-endpoint arrays, so one draw picks service and endpoint."""

    services: list[str]
    endpoint_service: np.ndarray  # index into services
    endpoint_method: list[str]
    endpoint_path: list[str]
    endpoint_p: np.ndarray
    latency_mu: np.ndarray
    latency_sigma: np.ndarray
    bytes_mu: np.ndarray
    service_share: np.ndarray
    p4xx: np.ndarray  # per service
    p5xx: np.ndarray
    app_error_per_5xx: np.ndarray
    error_codes: list[tuple[str, ...]] = field(default_factory=list)


def flatten(services: tuple[Service, ...] = SERVICES) -> FlatModel:
    endpoint_service, methods, paths, weights, mus, sigmas, bytes_mu = [], [], [], [], [], [], []
    for s_index, service in enumerate(services):
        total = sum(e.weight for e in service.endpoints)
        for endpoint in service.endpoints:
            endpoint_service.append(s_index)
            methods.append(endpoint.method)
            paths.append(endpoint.path)
            weights.append(endpoint.weight / total)
            mus.append(np.log(endpoint.latency_median_ms))
            sigmas.append(endpoint.latency_sigma)
            bytes_mu.append(np.log(endpoint.bytes_median))
    shares = np.array([s.share for s in services], dtype=np.float64)
    shares = shares / shares.sum()
    return FlatModel(
        services=[s.name for s in services],
        endpoint_service=np.array(endpoint_service, dtype=np.int32),
        endpoint_method=methods,
        endpoint_path=paths,
        endpoint_p=np.array(weights),
        latency_mu=np.array(mus),
        latency_sigma=np.array(sigmas),
        bytes_mu=np.array(bytes_mu),
        service_share=shares,
        p4xx=np.array([s.error_rate_4xx for s in services]),
        p5xx=np.array([s.error_rate_5xx for s in services]),
        app_error_per_5xx=np.array([s.app_error_per_5xx for s in services]),
        error_codes=[s.error_codes for s in services],
    )
