"""The dimension tables: exact rows from the stream, the catalog, the calendar and the status codes,
through re-syncs, retried inserts and a running `logpipe up`."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import orjson
import pyarrow as pa
import pytest

from logpipe import metrics
from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.warehouse.dimensions import CatalogError, DimensionConfig, DimensionSync, read_catalog

SERVICE_ROWS = "SELECT service, first_seen, last_seen, events FROM {db}.dim_service ORDER BY service"
FACT_SERVICES = "SELECT service, min(ts), max(ts), count() FROM {db}.fact_log GROUP BY service ORDER BY service"
ENDPOINT_ROWS = "SELECT service, method, endpoint, first_seen, last_seen FROM {db}.dim_endpoint ORDER BY 1, 2, 3"
FACT_ENDPOINTS = ("SELECT service, method, endpoint, min(ts), max(ts) FROM {db}.fact_log WHERE endpoint != '' "
                  "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
HOST_ROWS = "SELECT host, region, first_seen, last_seen FROM {db}.dim_host ORDER BY host"
FACT_HOSTS = ("SELECT host, argMax(region, ts), min(ts), max(ts) FROM {db}.fact_log WHERE host != '' "
              "GROUP BY host ORDER BY host")


def dimension_pairs() -> list[tuple[str, str]]:
    """Each dimension's rows, beside the same rows computed from the facts."""
    return [(SERVICE_ROWS, FACT_SERVICES), (ENDPOINT_ROWS, FACT_ENDPOINTS), (HOST_ROWS, FACT_HOSTS)]


def _rows(store, sql: str) -> list[tuple]:
    return store.query_rows(sql.replace("{db}", store.database))[1]


def _facts(n: int, seed: int, start: float) -> pa.Table:
    table = TrafficGenerator(seed=seed).generate(n, start, start + 60)
    return normalize_ndjson(encode_ndjson(table), Provenance("simulator")).facts


def _sync(store, catalog=None) -> DimensionSync:
    return DimensionSync(store, DimensionConfig(catalog=catalog), store.config.retention_days)


def test_a_new_service_endpoint_and_host_appear_with_their_first_and_last_sighting_within_one_sync(store):
    first = _facts(5_000, seed=3, start=time.time() - 3_600)
    store.insert("fact_log", first, "b-1")
    for dimension, from_facts in dimension_pairs():
        assert _rows(store, dimension) == _rows(store, from_facts)
    assert [row[0] for row in _rows(store, SERVICE_ROWS)] == sorted(set(first["service"].to_pylist()))
    assert sum(row[3] for row in _rows(store, SERVICE_ROWS)) == first.num_rows

    newcomer = pa.Table.from_pylist([{"service": "ledger", "endpoint": "/v1/entries", "method": "PUT",
                                      "host": "ledger-7", "region": "ap-south", "status": 201}])
    later = normalize_ndjson(b"\n".join(orjson.dumps({**row, "ts": time.time()}) for row in newcomer.to_pylist()),
                             Provenance("http")).facts
    store.insert("fact_log", later, "b-2")
    report = _sync(store).sync()
    assert report.errors == [] and report.dictionaries == 3
    db = store.database
    assert _rows(store, f"SELECT dictGet('{db}.dict_host', 'region', 'ledger-7'), "
                        f"dictHas('{db}.dict_service', 'ledger')") == [("ap-south", True)]
    assert ("ledger", "PUT", "/v1/entries") in [row[:3] for row in _rows(store, ENDPOINT_ROWS)]
    for dimension, from_facts in dimension_pairs():
        assert _rows(store, dimension) == _rows(store, from_facts)


def test_retried_inserts_and_repeated_syncs_never_duplicate_a_row_or_move_a_first_seen(store):
    old = _facts(3_000, seed=5, start=time.time() - 7_200)
    store.insert("fact_log", old, "b-old")
    before = _rows(store, SERVICE_ROWS)
    sync = _sync(store)
    for _ in range(3):
        store.insert("fact_log", old, "b-old")  # a replay after a crash: the same batch, the same token
        sync.sync()
    assert _rows(store, SERVICE_ROWS) == before
    store.command(f"OPTIMIZE TABLE {store.database}.dim_service_seen FINAL")  # merged, the rows are the same
    assert _rows(store, SERVICE_ROWS) == before
    newer = _facts(3_000, seed=6, start=time.time() - 60)
    store.insert("fact_log", newer, "b-new")
    after = {row[0]: row for row in _rows(store, SERVICE_ROWS)}
    for service, first_seen, last_seen, _ in before:
        assert after[service][1] == first_seen  # never later than the first sighting
        assert after[service][2] >= last_seen
    assert sum(row[3] for row in after.values()) == old.num_rows + newer.num_rows
    assert len(after) == len({*after})


def test_the_catalog_applies_at_the_next_sync_and_a_dropped_entry_is_emptied(store, tmp_path):
    store.insert("fact_log", _facts(2_000, seed=8, start=time.time() - 600), "b-1")
    catalog = tmp_path / "services.yaml"
    catalog.write_text("services:\n  Payment: {tier: critical, team: payments, owner: ana@example.com}\n"
                       "  auth: {tier: high, team: identity}\n")
    sync = _sync(store, catalog)
    assert sync.sync().catalog_rows == 2
    db = store.database
    lookup = (f"SELECT dictGet('{db}.dict_service', 'tier', 'payment'), dictGet('{db}.dict_service', 'team', "
              f"'auth'), dictGet('{db}.dict_service', 'owner', 'payment')")
    assert _rows(store, lookup) == [("critical", "identity", "ana@example.com")]
    assert sync.sync().catalog_rows == 0  # unchanged: nothing written
    catalog.write_text("services:\n  payment: {tier: high, team: payments-core, owner: ana@example.com}\n")
    assert sync.sync().catalog_rows == 2  # payment changed, auth dropped
    assert _rows(store, lookup) == [("high", "", "ana@example.com")]
    entries = _rows(store, "SELECT service, tier, team FROM {db}.dim_service WHERE service IN ('auth', 'payment') "
                           "ORDER BY service")
    assert entries == [("auth", "", ""), ("payment", "high", "payments-core")]
    fresh = _sync(store, catalog)  # a restarted engine: the same file writes nothing
    assert fresh.sync().catalog_rows == 0
    assert _rows(store, "SELECT count() FROM {db}.dim_service_catalog FINAL") == [(2,)]


def test_a_broken_catalog_is_reported_and_the_last_good_one_stays(store, tmp_path):
    catalog = tmp_path / "services.yaml"
    catalog.write_text("services:\n  payment: {tier: critical}\n")
    sync = _sync(store, catalog)
    sync.sync()
    errors = metrics.DIMENSION_SYNCS.labels(result="error")._value.get()
    catalog.write_text("services:\n  payment: {tier: critical, colour: red}\n")
    report = sync.sync()
    assert len(report.errors) == 1 and "services.payment.colour" in report.errors[0]
    assert str(catalog) in sync.last_error
    assert metrics.DIMENSION_SYNCS.labels(result="error")._value.get() == errors + 1
    assert report.dictionaries == 3  # the rest of the sync ran
    assert _rows(store, "SELECT tier FROM {db}.dim_service_catalog FINAL") == [("critical",)]


@pytest.mark.parametrize("text, message", [
    ("services: [a, b]", "services: Input should be a valid dictionary"),
    ("services:\n  'a b': {tier: x}", "is not a service name"),
    ("services:\n  A: {tier: x}\n  a: {tier: y}", "listed twice"),
    ("services:\n  a: {tier: \"x\\ny\"}", "services.a.tier"),
    ("services: {a: {tier: x}", "while parsing"),
])
def test_catalog_errors_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as error:
        read_catalog(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_the_calendar_covers_the_retention_window_and_the_days_ahead_once(store):
    sync = DimensionSync(store, DimensionConfig(days_ahead=14), retention_days=30)
    first = sync.sync()
    assert first.hours_added == (30 + 1 + 14) * 24
    assert sync.sync().hours_added == 0
    today = datetime.now(UTC).date()
    rows = _rows(store, "SELECT min(date), max(date), count(), uniqExact(hour) FROM {db}.dim_time")
    assert rows == [(today - timedelta(days=30), today + timedelta(days=14), first.hours_added, first.hours_added)]
    sunday = today + timedelta(days=6 - today.weekday())
    row = _rows(store, f"SELECT day_of_week, day_name, is_weekend, iso_week, quarter, hour_of_day FROM {{db}}.dim_time "
                       f"WHERE hour = toDateTime('{sunday.isoformat()} 13:00:00', 'UTC')")
    assert row == [(7, "Sunday", True, sunday.isocalendar().week, (sunday.month - 1) // 3 + 1, 13)]
    assert date.fromisoformat(str(rows[0][0])) <= today


def test_every_status_code_has_its_class_reason_and_error_flag(store):
    db = store.database
    rows = _rows(store, "SELECT status, class, reason, is_error FROM {db}.dim_status FINAL "
                        "WHERE status IN (0, 200, 404, 418, 503, 599) ORDER BY status")
    assert rows == [(0, "none", "No status (not a request)", False), (200, "2xx", "OK", False),
                    (404, "4xx", "Not Found", False), (418, "4xx", "I'm a Teapot", False),
                    (503, "5xx", "Service Unavailable", True), (599, "5xx", "Unassigned", True)]
    assert _rows(store, "SELECT count(), uniqExact(status) FROM {db}.dim_status") == [(501, 501)]
    store.apply_schema()
    assert _rows(store, "SELECT count() FROM {db}.dim_status") == [(501,)]
    assert _rows(store, f"SELECT dictGet('{db}.dict_status', 'reason', toUInt64(429))") == [("Too Many Requests",)]


def test_logpipe_up_syncs_the_catalog_and_the_dictionaries_on_its_interval(logpipe_factory, tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("services:\n  billing: {tier: gold, team: revenue}\n")
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_DIM_SYNC_S="0.5", LOGPIPE_SERVICE_CATALOG=str(catalog))
    run = uuid.uuid4().hex[:8]
    body = b"\n".join(orjson.dumps({"event_id": f"{run}-{i}", "ts": time.time(), "service": "billing",
                                    "host": f"b-{i % 2}", "region": "eu-west", "endpoint": "/invoice",
                                    "method": "POST", "status": 200}) for i in range(50))
    answer = httpx.post(f"{lp.base}/v1/logs", content=body, headers=lp.headers("ingest"), timeout=30)
    assert answer.status_code == 200

    def tier_and_region() -> list:
        return lp.query("SELECT dictGet('analytics.dict_service', 'tier', 'billing'), "
                        "dictGet('analytics.dict_host', 'region', 'b-1')")

    deadline = time.monotonic() + 30
    while tier_and_region() != [["gold", "eu-west"]] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tier_and_region() == [["gold", "eu-west"]]
    assert lp.query("SELECT service, events, tier, team FROM analytics.dim_service") == [["billing", 50, "gold",
                                                                                          "revenue"]]
    catalog.write_text("services:\n  billing: {tier: silver, team: revenue}\n")
    deadline = time.monotonic() + 30
    while tier_and_region()[0][0] != "silver" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tier_and_region() == [["silver", "eu-west"]]
    metrics_text = httpx.get(f"{lp.base}/metrics", headers=lp.headers(), timeout=10).text
    assert 'logpipe_dimension_syncs_total{result="ok"}' in metrics_text

    def sync_error() -> str:
        health = httpx.get(f"{lp.base}/healthz", headers=lp.headers(), timeout=10).json()
        return health["components"]["dimensions"]["last_error"]

    assert sync_error() == ""
    catalog.write_text("services:\n  billing: {tier: [not, text]}\n")  # broken: reported, the last good one stays
    deadline = time.monotonic() + 30
    while sync_error() == "" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "services.billing.tier" in sync_error() and str(catalog) in sync_error()
    assert tier_and_region() == [["silver", "eu-west"]]
    assert lp.stop() == 0


def test_the_documented_dimension_columns_are_the_tables_columns(store):
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "dimensions.md").read_text()
    table = text.split("<!-- dimensions-table:start -->")[1].split("<!-- dimensions-table:end -->")[0]
    documented = {}
    for line in table.strip().splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        documented[cells[0].strip("`")] = [c.strip() for c in cells[2].split(",")]
    actual = {}
    for name in documented:
        actual[name] = [c for (c,) in _rows(store, f"SELECT name FROM system.columns WHERE database = '{{db}}' "
                                                   f"AND table = '{name}' ORDER BY position")]
    assert documented == actual
    tables = {t for (t,) in _rows(store, "SELECT name FROM system.tables WHERE database = '{db}' "
                                         "AND name LIKE 'dim\\_%' AND name NOT LIKE '%\\_seen%' "
                                         "AND name != 'dim_service_catalog'")}
    assert tables == set(documented)
