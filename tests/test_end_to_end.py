"""`logpipe up` as a subprocess: ingest, query, dead letters, simulator, restart without loss."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest

from logpipe.simulator.model import SERVICES

pytestmark = pytest.mark.e2e


def _events(run: str, n: int) -> list[dict]:
    now = time.time()
    return [{"event_id": f"{run}-{i}", "ts": now - 1 + i / n, "service": SERVICES[i % 4].name,
             "status": 200 if i % 10 else 503, "latency_ms": 10 + i % 7, "endpoint": "/v1/e2e",
             "method": "GET", "tenant": "acme"} for i in range(n)]


def _post(lp, body: bytes, content_type: str = "application/x-ndjson") -> httpx.Response:
    return httpx.post(f"{lp.base}/v1/logs", content=body, timeout=60,
                      headers={"content-type": content_type, **lp.headers("ingest")})


def _wait_for(predicate, timeout_s: float = 60.0, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def test_ingest_query_dead_letters_simulator_and_restart(logpipe_factory, tmp_path):
    lp = logpipe_factory(LOGPIPE_SIM_RATE="3000", LOGPIPE_SIM_DIURNAL="false", LOGPIPE_SIM_SEED="42")
    assert httpx.get(f"{lp.base}/ping").json() == {"status": "ok"}

    # 1,000 known events, NDJSON, exactly those come back
    run = uuid.uuid4().hex[:8]
    events = _events(run, 1000)
    response = _post(lp, b"\n".join(orjson.dumps(e) for e in events))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1000, "rejected": 0, "errors": []}
    rows = lp.query(f"SELECT event_id, service, status, attributes['tenant'] FROM analytics.fact_log "
                    f"WHERE event_id LIKE '{run}-%' ORDER BY toUInt32(splitByChar('-', event_id)[2])")
    assert [r[0] for r in rows] == [e["event_id"] for e in events]
    assert [(r[1], r[2], r[3]) for r in rows] == [(e["service"], e["status"], "acme") for e in events]

    # 10 malformed records in a JSON array beside good ones: the good go in, the bad get reasons
    bad_run = uuid.uuid4().hex[:8]
    mixed = _events(bad_run, 5) + [{"service": "auth", "note": f"{bad_run}-missing-ts-{i}"} for i in range(5)] \
        + [{"ts": "not-a-time", "service": "order", "note": f"{bad_run}-bad-ts-{i}"} for i in range(5)]
    response = _post(lp, orjson.dumps(mixed), "application/json")
    body = response.json()
    assert response.status_code == 200
    assert (body["accepted"], body["rejected"]) == (5, 10)
    assert [e["index"] for e in body["errors"]] == list(range(5, 15))
    assert body["errors"][0]["reason"] == "ts: missing"
    dead = lp.query(f"SELECT reason, raw FROM analytics.dead_letter WHERE raw LIKE '%{bad_run}%' ORDER BY raw")
    assert len(dead) == 10
    assert {r[0].split(" (")[0] for r in dead} == {"ts: missing", "ts: unrecognized timestamp format"}

    # a body that is not JSON at all, and one that is too large
    assert _post(lp, b"[1, 2", "application/json").status_code == 400

    # the simulator's rows accumulate, with the configured error rates per service
    def simulated() -> int:
        return lp.query("SELECT count() FROM analytics.fact_log WHERE source = 'simulator'")[0][0]

    assert _wait_for(lambda: simulated() >= 60_000, timeout_s=90)
    measured = dict(lp.query(
        "SELECT service, countIf(status >= 500) / count() FROM analytics.fact_log "
        "WHERE source = 'simulator' AND kind = 'request' GROUP BY service"))
    for service in SERVICES:
        assert measured[service.name] == pytest.approx(service.error_rate_5xx, rel=0.5, abs=0.004), service.name

    # graceful stop, restart on the same data dir: every acknowledged event exactly once
    acked_before = lp.query("SELECT count() FROM analytics.fact_log WHERE source = 'http'")[0][0]
    assert acked_before == 1005
    assert lp.stop() == 0
    log = lp.log_path.read_text()
    assert "stopped cleanly" in log
    lp2 = logpipe_factory(data_dir=tmp_path, LOGPIPE_SIM_ENABLED="false")
    counts = lp2.query(f"SELECT count(), uniqExact(event_id) FROM analytics.fact_log "
                       f"WHERE event_id LIKE '{run}-%' OR event_id LIKE '{bad_run}-%'")
    assert counts == [[1005, 1005]]
    total, unique = lp2.query("SELECT count(), uniqExact(event_id) FROM analytics.fact_log")[0]
    assert total == unique
    assert lp2.stop() == 0


def test_limits_and_simulator_control(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_MAX_BODY_BYTES="2048")
    assert _post(lp, b"{}" + b" " * 4000).status_code == 413
    admin = lp.headers("admin")
    status = httpx.put(f"{lp.base}/v1/simulator", json={"running": True, "rate": 500, "scenario": "steady"},
                       headers=admin).json()
    assert status["running"] and status["rate"] == 500 and status["scenario"] == "steady"
    created = httpx.post(f"{lp.base}/v1/simulator/incidents", headers=admin,
                         json={"type": "error_burst", "service": "payment", "duration_s": 120, "error_rate": 0.6})
    assert created.status_code == 201 and created.json()["state"] == "active"
    assert httpx.post(f"{lp.base}/v1/simulator/incidents", json={"type": "outage", "service": "nope"},
                      headers=admin).status_code == 422
    listed = httpx.get(f"{lp.base}/v1/simulator/incidents", headers=lp.headers()).json()["incidents"]
    assert [(i["type"], i["service"], i["error_rate"]) for i in listed] == [("error_burst", "payment", 0.6)]
    metrics = httpx.get(f"{lp.base}/metrics", headers=lp.headers()).text
    for name in ("logpipe_events_received_total", "logpipe_events_sent_total", "logpipe_freshness_seconds",
                 "logpipe_write_seconds_bucket"):
        assert name in metrics
    assert httpx.post(f"{lp.base}/v1/query", content=b"DROP DATABASE analytics", headers=lp.headers()
                      ).status_code == 400
    assert lp.stop() == 0
