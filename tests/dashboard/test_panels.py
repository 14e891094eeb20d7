"""Every panel's query against the embedded ClickHouse with seeded traffic and an incident."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient

from logpipe.codec.ndjson import encode_ndjson
from logpipe.dashboard.panels import SQL_PANELS as PANELS
from logpipe.dashboard.panels import PanelRange, grafana_sql, panel_sql
from logpipe.events import Provenance
from logpipe.gateway.app import create_store_app
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.simulator.incidents import IncidentRequest
from tests.conftest import bearer, copy_facts, registry_of, rows_read

EXPECTED_COLUMNS = {"timeseries": ["t", "series", "value"], "bar": ["label", "series", "value"]}
# The rows of the minutes a rollup panel reads: those that start inside the range.
MINUTES_IN_RANGE = "toStartOfMinute(ts) >= {from:DateTime64(3)} AND toStartOfMinute(ts) < {to:DateTime64(3)}"


@pytest.fixture(scope="module")
def seeded(store_dir, tmp_path_factory):
    """An hour of traffic, the last ten minutes of it with payment failing 60% of requests."""
    from logpipe.warehouse.config import WarehouseConfig
    from logpipe.warehouse.store import Store

    store = Store(WarehouseConfig(data_dir=store_dir, database="dash_panels"))
    store.command("DROP DATABASE IF EXISTS dash_panels")
    store.apply_schema()
    now = time.time()
    generator = TrafficGenerator(seed=5)
    normal = generator.generate(60_000, now - 3600, now - 600)
    generator.schedule.add(IncidentRequest(type="error_burst", service="payment", duration_s=600, error_rate=0.6),
                           now - 600)
    incident = generator.generate(12_000, now - 600, now)
    week_ago = TrafficGenerator(seed=6).generate(6_000, now - 7 * 86_400 - 3600, now - 7 * 86_400 - 600)
    for table in (normal, incident, week_ago):
        store.insert("fact_log", normalize_ndjson(encode_ndjson(table), Provenance("http")).facts)
    hosts = [("kernel", "db-1", "ERROR"), ("payment", "db-1", "WARN"), ("kernel", "web-2", "ERROR")]
    system = b"".join(orjson.dumps({"ts": now - 60 * i, "kind": "system", "service": service, "host": host,
                                    "level": level, "message": "link down"}) + b"\n"
                      for i, (service, host, level) in enumerate(hosts))
    store.insert("fact_log", normalize_ndjson(system, Provenance("syslog")).facts)
    bad = normalize_ndjson(b'{"service": "auth"}\n{"ts": "soon", "service": "auth"}\n', Provenance("http"))
    from logpipe.processing.normalize import dead_letter_table

    store.insert("dead_letter", dead_letter_table(bad.dead_letters, Provenance("http")))
    alert = {"ts": [int(now * 1000)], "rule": ["error_rate"], "subject": ["payment"], "state": ["firing"],
             "severity": ["critical"], "value": [61.0], "threshold": [20.0], "since": [int((now - 60) * 1000)],
             "message": ["error_rate for payment: 61 is above 20"]}
    import pyarrow as pa

    from logpipe.events import ALERT_SCHEMA

    store.insert("alerts", pa.table(alert).cast(ALERT_SCHEMA))
    catalog = tmp_path_factory.mktemp("catalog") / "services.yaml"
    catalog.write_text("services:\n  payment: {tier: critical, team: payments}\n"
                       "  auth: {tier: critical, team: identity}\n")
    from logpipe.warehouse.dimensions import DimensionConfig, DimensionSync

    assert DimensionSync(store, DimensionConfig(catalog=catalog), 30).sync().errors == []  # as an engine does
    yield store, now
    store.command("DROP DATABASE IF EXISTS dash_panels")
    store.close()


def _run(store, panel, window: PanelRange) -> tuple[list[str], list[tuple]]:
    return store.query_rows(panel_sql(panel, store.database), window.parameters())


@pytest.mark.parametrize("panel", PANELS, ids=[p.id for p in PANELS])
def test_every_panel_returns_its_shape_with_data(seeded, panel):
    store, now = seeded
    window = PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000))
    columns, rows = _run(store, panel, window)
    assert rows, f"{panel.id} returned nothing"
    if panel.chart in EXPECTED_COLUMNS:
        assert columns == EXPECTED_COLUMNS[panel.chart]
        assert all(isinstance(row[2], int | float) and row[2] >= 0 for row in rows)


def test_the_incident_shows_in_the_error_rate_and_top_error_endpoints(seeded):
    store, now = seeded
    by_id = {p.id: p for p in PANELS}
    window = PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000))
    _, rows = _run(store, by_id["error_rate"], window)
    payment = [(t, v) for t, series, v in rows if series == "payment 5xx"]
    before = [v for t, v in payment if t.replace(tzinfo=UTC).timestamp() < now - 900]
    # the bucket holding `now` is partial: a handful of requests can give any rate
    during = [v for t, v in payment if now - 540 <= t.replace(tzinfo=UTC).timestamp() <= now - 120]
    assert max(before) < 20 and min(during) > 40  # percent of requests
    _, top = _run(store, by_id["error_endpoints"], window)
    assert top[0][0] == "payment"
    _, dead = _run(store, by_id["dead_letters"], window)
    assert sum(row[2] for row in dead) == 2
    assert {row[1] for row in dead} == {"ts: missing", "ts: unrecognized timestamp format"}


def test_the_dimension_panels_show_tiers_reasons_weekdays_and_last_week(seeded):
    store, now = seeded
    by_id = {p.id: p for p in PANELS}
    window = PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000))
    columns, tiers = _run(store, by_id["error_rate_tier"], window)
    rows = [dict(zip(columns, row, strict=True)) for row in tiers]
    critical = {(r["tier"], r["team"]) for r in rows if r["tier"] == "critical"}
    assert critical == {("critical", "payments"), ("critical", "identity")}
    assert rows[0]["team"] == "payments"  # the failing service's team leads
    assert sum(r["services"] for r in rows if r["tier"] == "(none)") >= 1  # not in the catalog
    facts = store.query_rows(f"SELECT status, count() FROM {store.database}.fact_log WHERE kind = 'request' "
                             f"AND {MINUTES_IN_RANGE} GROUP BY status ORDER BY status", window.parameters())[1]
    _, codes = _run(store, by_id["status_codes"], window)
    assert [(label.split(" ")[0], value) for label, _, value in codes] == [(str(s), n) for s, n in facts]
    assert ("503 Service Unavailable", "5xx") in [(label, series) for label, series, _ in codes]
    assert {label for label, _, _ in codes} >= {"200 OK"}
    _, hours = _run(store, by_id["traffic_hours"], window)
    today = datetime.fromtimestamp(now, UTC).strftime("%A")
    assert today in {series for _, series, _ in hours}
    assert {label for label, _, _ in hours} <= {f"{h:02d}" for h in range(24)}
    _, weeks = _run(store, by_id["traffic_week"], window)
    earlier = [(t.replace(tzinfo=UTC).timestamp(), v) for t, series, v in weeks if series == "a week earlier"]
    assert earlier and all(now - 3600 - 60 <= t <= now - 540 for t, _ in earlier)  # drawn at this week's time
    last_week = store.scalar(f"SELECT count() FROM {store.database}.fact_log WHERE toStartOfMinute(ts) >= "
                             "{from:DateTime64(3)} - INTERVAL 7 DAY AND toStartOfMinute(ts) < {to:DateTime64(3)} - "
                             "INTERVAL 7 DAY", window.parameters())
    assert last_week > 5_000 and round(sum(v for _, v in earlier) * window.bucket_s) == last_week


def test_the_error_messages_and_pipeline_panels_count_what_the_facts_hold(seeded):
    store, now = seeded
    by_id = {p.id: p for p in PANELS}
    window = PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000))
    db = store.database
    _, top = _run(store, by_id["error_messages"], window)
    facts = store.query_rows(
        f"SELECT service, error_code, substring(message, 1, 120) AS message, count() AS events FROM {db}.fact_log "
        f"WHERE {MINUTES_IN_RANGE} AND level IN ('ERROR', 'FATAL') GROUP BY service, error_code, message "
        "ORDER BY events DESC, service, error_code, message LIMIT 10", window.parameters())[1]
    assert top == facts and top[0][0] == "payment"  # the incident's errors lead
    _, pipeline = _run(store, by_id["pipeline"], window)
    inserted = sum(value for _, series, value in pipeline if series == "inserted ev/s") * window.bucket_s
    stored = store.scalar(f"SELECT count() FROM {db}.fact_log WHERE toStartOfMinute(ingest_ts) >= "
                          "{from:DateTime64(3)} AND toStartOfMinute(ingest_ts) < {to:DateTime64(3)}",
                          window.parameters())
    assert round(inserted) == stored > 70_000
    # All of it was inserted at once: one minute, whose delay p99 is that of the hour-old events' spread.
    exact = store.scalar(f"SELECT quantileExact(0.99)(dateDiff('millisecond', ts, ingest_ts)) / 1000 "
                         f"FROM {db}.fact_log")
    freshness = [value for _, series, value in pipeline if series == "freshness p99 (s)"]
    assert len(freshness) >= 1 and abs(max(freshness) - exact) <= 0.02 * exact


def test_the_latency_panel_gives_each_service_the_quantiles_of_its_requests(seeded):
    store, now = seeded
    window = PanelRange(int((now - 86_400) * 1000), int((now + 120) * 1000))  # buckets of 6 minutes
    _, rows = _run(store, next(p for p in PANELS if p.id == "latency"), window)
    exact = {(t, f"{service} p{q}"): value for t, service, q, value in store.query_rows(
        "SELECT t, service, q, round(value, 1) FROM (SELECT toStartOfInterval(ts, INTERVAL {bucket:UInt32} SECOND) "
        "AS t, service, quantilesExact(0.5, 0.95, 0.99)(latency_ms) AS qs, count() AS n "
        f"FROM {store.database}.fact_log WHERE kind = 'request' AND {MINUTES_IN_RANGE} GROUP BY t, service "
        "HAVING n >= 1000) ARRAY JOIN qs AS value, ['50', '95', '99'] AS q", window.parameters())[1]}
    drawn = {(t, series): value for t, series, value in rows}
    assert len(exact) >= 24 and set(exact) <= set(drawn)  # four services, two buckets at least
    worst = max(abs(drawn[key] - value) / value for key, value in exact.items())
    assert worst <= 0.05, worst


def test_the_slowest_endpoints_over_whole_hours_and_edge_minutes_are_those_of_every_minute(seeded):
    store, now = seeded
    every_minute = (
        "SELECT service, endpoint, round(toFloat64(quantilesTDigestIfMerge(0.5, 0.95, 0.99)(latency_q)[3]), 1), "
        f"sum(requests) FROM {store.database}.fact_log_1m WHERE minute >= {{from:DateTime64(3)}} "
        "AND minute < {to:DateTime64(3)} AND endpoint != '' GROUP BY service, endpoint")
    for hours in (1, 3, 24):  # only edge minutes; an hour whole and the minutes around it; a day
        window = PanelRange(int((now - hours * 3600) * 1000), int((now + 120) * 1000))
        _, rows = _run(store, next(p for p in PANELS if p.id == "slow_endpoints"), window)
        expected = {(service, endpoint): (p99, n) for service, endpoint, p99, n
                    in store.query_rows(every_minute, window.parameters())[1]}
        assert len(rows) == 10 and rows == sorted(rows, key=lambda row: -row[2])
        for service, endpoint, p99, requests in rows:
            assert requests == expected[(service, endpoint)][1]
            assert abs(p99 - expected[(service, endpoint)][0]) <= 0.02 * p99


def test_no_panel_reads_more_rows_when_the_store_holds_ten_times_the_events(store):
    """Ten times the traffic in the same hour: a merged rollup holds one row per minute and key whatever
    the traffic, so every panel reads what it read before, over an hour and over a day."""
    now = time.time()
    system = b"".join(orjson.dumps({"ts": now - 30 * i, "kind": "system", "service": "kernel", "host": f"db-{i % 3}",
                                    "level": "ERROR", "message": "link down"}) + b"\n" for i in range(60))
    store.insert("fact_log", normalize_ndjson(system, Provenance("syslog")).facts)
    traffic = TrafficGenerator(seed=9).generate(20_000, now - 3600, now)
    store.insert("fact_log", normalize_ndjson(encode_ndjson(traffic), Provenance("http")).facts)
    db = store.database
    rollups = [name for (name,) in store.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String} AND match(name, '^fact_log_.*1[mh]$')",
        {"db": db})[1]]
    assert len(rollups) == 7

    def read_by_panel() -> dict[tuple[str, int], dict[str, int]]:
        for rollup in rollups:  # as background merges leave it
            store.command(f"OPTIMIZE TABLE {db}.{rollup} FINAL")
        return {(panel.id, hours): rows_read(store, panel_sql(panel, db),
                                             PanelRange(int((now - hours * 3600) * 1000),
                                                        int((now + 60) * 1000)).parameters())
                for panel in PANELS for hours in (1, 24)}

    before = read_by_panel()
    events = store.scalar(f"SELECT count() FROM {db}.fact_log")
    for copy in range(9):  # the same events again, under new ids: the same minutes and keys
        copy_facts(store, copy)
    assert store.scalar(f"SELECT count() FROM {db}.fact_log") == 10 * events
    after = read_by_panel()
    assert after == before
    assert all("fact_log" not in tables for tables in after.values())  # no panel reads raw rows
    assert sum(rows_read(store, f"SELECT count() FROM {db}.fact_log WHERE status = 503").values()) == 10 * events


def test_the_service_filter_and_the_range_narrow_the_data(seeded):
    store, now = seeded
    eps = next(p for p in PANELS if p.id == "eps")
    everything = _run(store, eps, PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000)))[1]
    auth = _run(store, eps, PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000), "auth"))[1]
    recent = _run(store, eps, PanelRange(int((now - 300) * 1000), int((now + 120) * 1000)))[1]
    assert {row[1] for row in auth} == {"total", "auth"}
    assert sum(r[2] for r in auth if r[1] == "total") < sum(r[2] for r in everything if r[1] == "total")
    assert len(recent) < len(everything)


def expand_grafana_macros(sql: str, start: datetime, end: datetime, service: str = "__all",
                          source: str = "__all") -> str:
    """What Grafana's ClickHouse plugin does to the macros, closely enough to run the query."""
    def literal(moment: datetime) -> str:
        return f"toDateTime64('{moment.strftime('%Y-%m-%d %H:%M:%S')}', 3, 'UTC')"

    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m.group(1)} >= {literal(start)} AND "
                 f"{m.group(1)} <= {literal(end)}", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(\1, INTERVAL 60 second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime('{start:%Y-%m-%d %H:%M:%S}', 'UTC')")
    sql = sql.replace("$__toTime", f"toDateTime('{end:%Y-%m-%d %H:%M:%S}', 'UTC')")
    # Grafana's percentencode: every byte but letters, digits and -_.~ as %XX
    return (sql.replace("$__interval_s", "60").replace("${service:percentencode}", quote(service, safe=""))
            .replace("${source:percentencode}", quote(source, safe="")))


HOSTILE_SERVICES = ("x' OR 1=1 --", "x\\' OR 1=1 --", "payment') OR ('1'='1", "%27%20OR%201", "결제 '\\\n")


def test_a_hostile_grafana_service_value_is_one_string_literal(seeded):
    """Whatever a service name holds (quotes, backslashes, percent signs), the Grafana query compares it
    as one value: the all-services query sees everything, a hostile name matches no row."""
    store, now = seeded
    panel = next(p for p in PANELS if p.id == "status_codes")
    sql = grafana_sql(panel, store.database)
    assert "'${service}'" not in sql and "${service:percentencode}" in sql
    start, end = datetime.fromtimestamp(now - 3600, UTC), datetime.fromtimestamp(now + 120, UTC)
    everything = sum(row[2] for row in store.query_rows(expand_grafana_macros(sql, start, end))[1])
    assert everything > 0
    for service in HOSTILE_SERVICES:
        assert store.query_rows(expand_grafana_macros(sql, start, end, service))[1] == [], service


@pytest.mark.parametrize("panel", PANELS, ids=[p.id for p in PANELS])
def test_the_grafana_form_of_every_query_runs_after_macro_expansion(seeded, panel):
    store, now = seeded
    sql = grafana_sql(panel, store.database)
    assert not re.search(r"(?<!\$)\{\w+:", sql)  # no named parameter left (${service:...} is Grafana's)
    start, end = datetime.fromtimestamp(now - 3600, UTC), datetime.fromtimestamp(now + 120, UTC)
    rows = store.query_rows(expand_grafana_macros(sql, start, end))[1]
    assert rows
    assert store.query_rows(expand_grafana_macros(sql, start, end, "payment"))[1]


def test_injected_sql_in_the_parameters_is_refused_or_harmless(seeded, tokens):
    store, now = seeded
    client = TestClient(create_store_app(store, lambda: {"status": "ok"}, registry_of(tokens)),
                        headers=bearer(tokens["read"]))
    from logpipe.gateway.routers import dashboard

    client.app.include_router(dashboard.router)
    base = {"from": int((now - 3600) * 1000), "to": int((now + 120) * 1000)}
    for service in ("x' OR 1=1 --", "auth'; DROP TABLE dash_panels.fact_log; --", "a" * 65):
        assert client.get("/api/panels/eps", params={**base, "service": service}).status_code == 422
    for bad_time in ("now()", "1; DROP TABLE x", "2026-01-01"):
        assert client.get("/api/panels/eps", params={**base, "from": bad_time}).status_code == 422
    assert client.get("/api/panels/eps", params={**base, "from": base["to"], "to": base["from"]}).status_code == 422
    assert client.get("/api/panels/nope").status_code == 404
    ok = client.get("/api/panels/eps", params={**base, "service": "auth"})
    assert ok.status_code == 200 and ok.json()["rows"]
    assert store.scalar("SELECT count() FROM dash_panels.fact_log") > 0


def test_the_source_filter_narrows_the_panels_to_one_source(seeded):
    store, now = seeded
    by_id = {p.id: p for p in PANELS}
    window = PanelRange(int((now - 3600) * 1000), int((now + 120) * 1000), source="syslog")
    _, rows = _run(store, by_id["eps"], window)
    assert sorted({series for _, series, _ in rows}) == ["kernel", "payment", "total"]
    assert sum(value * 60 for _, series, value in rows if series == "total") == 3
    _, hosts = _run(store, by_id["system_hosts"], window)
    assert hosts == [("db-1", "ERROR", 1), ("db-1", "WARN", 1), ("web-2", "ERROR", 1)]
    assert _run(store, by_id["status_codes"], window)[1] == []  # syslog carries no requests
    _, everything = _run(store, by_id["sources"], PanelRange(window.start_ms, window.end_ms))
    assert {series for _, series, _ in everything} == {"http", "syslog"}
    sql = grafana_sql(by_id["eps"], store.database)
    start, end = datetime.fromtimestamp(now - 3600, UTC), datetime.fromtimestamp(now + 120, UTC)
    grafana = store.query_rows(expand_grafana_macros(sql, start, end, source="syslog"))[1]
    assert sorted({series for _, series, _ in grafana}) == ["kernel", "payment", "total"]
    with pytest.raises(ValueError, match="source"):
        PanelRange(window.start_ms, window.end_ms, source="x' OR 1=1")
