from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from logpipe.simulator.generator import TrafficGenerator
from logpipe.simulator.incidents import IncidentRequest
from logpipe.simulator.model import SERVICES, diurnal_factor

T0 = 1_764_000_000.0


@pytest.fixture(scope="module")
def million():
    generator = TrafficGenerator(seed=7)
    return generator.generate(1_000_000, T0, T0 + 600)


def _requests(table):
    return table.filter(pc.equal(table["kind"], "request"))


def test_service_shares_match_the_model(million):
    requests = _requests(million)
    services = requests["service"].to_numpy(zero_copy_only=False)
    for service in SERVICES:
        share = np.mean(services == service.name)
        assert share == pytest.approx(service.share, abs=0.005), service.name


def test_error_rates_per_service_match_the_model(million):
    requests = _requests(million)
    services = requests["service"].to_numpy(zero_copy_only=False)
    status = requests["status"].to_numpy()
    for service in SERVICES:
        rows = services == service.name
        rate5 = np.mean(status[rows] >= 500)
        rate4 = np.mean((status[rows] >= 400) & (status[rows] < 500))
        assert rate5 == pytest.approx(service.error_rate_5xx, rel=0.1, abs=0.001), service.name
        assert rate4 == pytest.approx(service.error_rate_4xx, rel=0.05, abs=0.001), service.name


def test_latency_median_per_endpoint_matches_and_errors_are_slower(million):
    requests = _requests(million)
    endpoints = requests["endpoint"].to_numpy(zero_copy_only=False)
    methods = requests["method"].to_numpy(zero_copy_only=False)
    latency = requests["latency_ms"].to_numpy()
    status = requests["status"].to_numpy()
    for service in SERVICES:
        for endpoint in service.endpoints:
            rows = (endpoints == endpoint.path) & (methods == endpoint.method) & (status < 400)
            median = np.median(latency[rows])
            assert median == pytest.approx(endpoint.latency_median_ms, rel=0.05), endpoint.path
            p95 = np.quantile(latency[rows], 0.95)
            expected_p95 = endpoint.latency_median_ms * np.exp(1.6449 * endpoint.latency_sigma)
            assert p95 == pytest.approx(expected_p95, rel=0.1), endpoint.path
    assert np.median(latency[status >= 500]) > 2 * np.median(latency[status < 400])


def test_app_error_logs_carry_stack_traces_and_follow_5xx(million):
    errors = million.filter(pc.equal(million["kind"], "app_error"))
    assert errors.num_rows > 1000
    assert set(errors["level"].to_pylist()) == {"ERROR"}
    assert all("Traceback" in m and "\n" in m for m in errors["message"].to_pylist()[:100])
    five_xx = pc.sum(pc.greater_equal(million["status"], 500)).as_py()
    assert errors.num_rows == pytest.approx(0.5 * five_xx, rel=0.1)


def test_diurnal_curve_has_night_trough_and_evening_peak():
    day = T0 - T0 % 86_400
    hours = np.array([diurnal_factor(day + h * 3600) for h in range(24)])
    assert hours.mean() == pytest.approx(1.0, abs=0.01)
    assert hours.argmin() in (2, 3, 4)
    assert hours.argmax() in (19, 20, 21)
    assert hours.max() / hours.min() > 5


def test_same_seed_same_events():
    a = TrafficGenerator(seed=3).generate(10_000, T0, T0 + 10)
    b = TrafficGenerator(seed=3).generate(10_000, T0, T0 + 10)
    c = TrafficGenerator(seed=4).generate(10_000, T0, T0 + 10)
    assert a.equals(b)
    assert not a.equals(c)


def test_incident_changes_exactly_the_targeted_service():
    base = TrafficGenerator(seed=11)
    hit = TrafficGenerator(seed=11)
    hit.schedule.add(IncidentRequest(type="error_burst", service="payment", error_rate=0.6, duration_s=100), T0)
    normal = _requests(base.generate(200_000, T0, T0 + 10))
    burst = _requests(hit.generate(200_000, T0, T0 + 10))

    def rate5(table, service):
        rows = pc.equal(table["service"], service)
        status = table.filter(rows)["status"].to_numpy()
        return np.mean(status >= 500)

    assert rate5(burst, "payment") == pytest.approx(0.6, abs=0.01)
    for service in ("auth", "order", "notify"):
        assert rate5(burst, service) == pytest.approx(rate5(normal, service), abs=0.003)
    after = _requests(hit.generate(200_000, T0 + 200, T0 + 210))
    assert rate5(after, "payment") < 0.05


def test_spike_and_latency_and_outage_incidents():
    gen = TrafficGenerator(seed=5)
    gen.schedule.add(IncidentRequest(type="spike", service="notify", factor=4), T0)
    gen.schedule.add(IncidentRequest(type="latency", service="order", factor=5), T0)
    gen.schedule.add(IncidentRequest(type="outage", service="auth"), T0)
    table = _requests(gen.generate(200_000, T0, T0 + 10))
    services = table["service"].to_numpy(zero_copy_only=False)
    assert np.mean(services == "notify") > 0.4  # 0.20 share x4, renormalized
    assert set(table.filter(pc.equal(table["service"], "auth"))["status"].to_pylist()) == {503}
    order_ok = (services == "order") & (table["status"].to_numpy() < 400)
    assert np.median(table["latency_ms"].to_numpy()[order_ok]) > 150


def test_event_times_ascend_within_the_window_and_few_users_make_most_requests(million):
    requests = _requests(million)
    ts = requests["ts"].cast(pa.int64()).to_numpy()
    assert (np.diff(ts) >= 0).all()
    assert ts.min() >= T0 * 1000 and ts.max() < (T0 + 600) * 1000
    per_second = np.bincount((ts - int(T0 * 1000)) // 1000, minlength=600)
    assert per_second.min() > 0.8 * per_second.mean()  # uniform over the window, not bunched
    per_user = np.sort(pc.value_counts(requests["user_id"]).field("counts").to_numpy())[::-1]
    assert per_user[0] > 20 * np.median(per_user)  # user popularity falls off like k^-0.8
    assert per_user[:100].sum() > 0.05 * requests.num_rows
    assert len(per_user) > 30_000  # and the long tail is there
