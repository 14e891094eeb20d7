"""User queries: ClickHouse parses them, only reads of the analytics database run, under limits."""

from __future__ import annotations

import threading
import time
import uuid

import pyarrow as pa
import pytest

from logpipe.dashboard.panels import SQL_PANELS, panel_sql
from logpipe.events import ALERT_SCHEMA
from logpipe.warehouse.config import QueryLimits, WarehouseConfig
from logpipe.warehouse.errors import StoreBusy, StoreError
from logpipe.warehouse.sandbox import DENIED_CATEGORIES, QueryRefused, check_query, function_denied
from logpipe.warehouse.store import Store

REFUSED = {
    "SELECT 1 INTO OUTFILE '{tmp}/out.txt'": "INTO OUTFILE",
    "SELECT 1 INTO OUTFILE '{tmp}/out.txt' TRUNCATE": "INTO OUTFILE",
    "SELECT 1 INTO OUTFILE '{tmp}/out.txt.gz' COMPRESSION 'gzip'": "INTO OUTFILE",
    "SELECT file('/etc/passwd')": "function file()",
    "SELECT FILE('/etc/passwd')": "function FILE()",
    "SELECT length(file('/proc/self/environ', 'RawBLOB'))": "function file()",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')": "table function file()",
    "SELECT * FROM file('/proc/self/environ', 'RawBLOB')": "table function file()",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')": "table function url()",
    "SELECT * FROM executable('id', 'TSV', 'a String')": "table function executable()",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')": "table function s3()",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)": "table function remote()",
    "SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')": "table function mysql()",
    "SELECT * FROM python('x')": "table function python()",
    "SELECT * FROM merge('system', '^users$')": "table function merge()",
    "SELECT * FROM sqlite('/etc/x.db', 't')": "table function sqlite()",
    "SELECT * FROM input('a String')": "table function input()",
    "SELECT * FROM (SELECT * FROM url('http://127.0.0.1:9/x', CSV))": "table function url()",
    "SELECT arrayMap(x -> file(x), ['/etc/passwd'])": "function file()",
    "SELECT dictGet('d', 'v', 1)": "dictGet() reads only the dictionaries",
    "SELECT dictGet('{other}.dict_status', 'reason', 1)": "dictGet() reads only the dictionaries",
    "SELECT dictGetOrDefault(concat('dict_', 'status'), 'reason', 1, '')": "dictGetOrDefault() reads only",
    "SELECT dictHas(lower('DICT_HOST'), 'h')": "dictHas() reads only",
    "SELECT dictIsIn('dict_status', 1, 2)": "function dictIsIn()",
    "SELECT joinGet('t', 'v', 1)": "function joinGet()",
    "SELECT getServerSetting('path')": "function getServerSetting()",
    "SELECT sleepEachRow(3) FROM numbers(10)": "function sleepEachRow()",
    "SELECT * FROM system.users": "system.users",
    "SELECT * FROM system.processes": "system.processes",
    "SELECT name FROM `system`.`settings`": "system.settings",
    "SELECT * FROM {other}.secret": "database",
    "SELECT 1 WHERE 1 IN {other}.secret": "database",
    "SELECT * FROM numbers(1) AS a JOIN {other}.secret AS b ON 1": "database",
    "WITH s AS (SELECT * FROM {other}.secret) SELECT * FROM s": "database",
    "SELECT 1 FORMAT JSON": "FORMAT",
    "SELECT 1 SETTINGS readonly = 0": "SETTINGS",
    "SELECT 1 SETTINGS max_execution_time = 100000": "SETTINGS",
    "INSERT INTO alerts SELECT * FROM alerts": "only SELECT",
    "DROP DATABASE analytics": "only SELECT",
    "CREATE TABLE x (a Int8) ENGINE = Memory": "only SELECT",
    "ALTER TABLE fact_log DELETE WHERE 1": "only SELECT",
    "SET readonly = 0": "only SELECT",
    "SYSTEM FLUSH LOGS": "only SELECT",
    "KILL QUERY WHERE 1": "only SELECT",
    "SHOW TABLES FROM system": "only SELECT",
    "EXPLAIN SELECT * FROM file('/etc/passwd')": "table function file()",
}
SYNTAX = ["SELECT 1; SELECT 2", "SELECT 1; INSERT INTO alerts SELECT * FROM alerts", "SELEC 1", ""]


@pytest.fixture
def other_database(store):
    """A database beside analytics, as any ClickHouse server has (and chdb keeps on the same disk)."""
    name = f"o_{uuid.uuid4().hex[:8]}"
    store.command(f"CREATE DATABASE {name}")
    store.command(f"CREATE TABLE {name}.secret (password String) ENGINE = MergeTree ORDER BY tuple()")
    store.command(f"INSERT INTO {name}.secret VALUES ('hunter2')")
    yield name
    store.command(f"DROP DATABASE IF EXISTS {name}")


@pytest.mark.parametrize("template", list(REFUSED), ids=list(REFUSED.values()))
def test_what_reads_files_the_network_other_databases_or_changes_anything_is_refused(store, other_database,
                                                                                      tmp_path, template):
    sql = template.format(tmp=tmp_path, other=other_database)
    with pytest.raises(QueryRefused) as refused:
        store.query_user(sql)
    assert REFUSED[template] in str(refused.value)
    assert list(tmp_path.iterdir()) == []  # INTO OUTFILE wrote nothing


@pytest.mark.parametrize("sql", SYNTAX)
def test_more_than_one_statement_or_none_is_a_syntax_error(store, sql):
    with pytest.raises(StoreError) as failed:
        store.query_user(sql)
    assert failed.value.code == 62 and not failed.value.retryable  # SYNTAX_ERROR


def test_reads_of_the_analytics_database_run_and_unqualified_tables_are_its_own(store, other_database):
    now_ms = int(time.time() * 1000)
    alert = pa.table({"ts": [now_ms], "rule": ["r"], "subject": ["s"], "state": ["firing"], "severity": ["info"],
                      "value": [1.0], "threshold": [0.5], "since": [now_ms], "message": ["m"]}).cast(ALERT_SCHEMA)
    store.insert("alerts", alert)
    db = store.database
    assert store.query_user("SELECT count() FROM alerts")[1] == [(1,)]
    assert store.query_user(f"SELECT rule, subject FROM {db}.alerts")[1] == [("r", "s")]
    assert store.query_user("SELECT * FROM (WITH a AS (SELECT rule FROM alerts) SELECT * FROM a UNION ALL "
                            "SELECT 'x') ORDER BY 1")[1] == [("r",), ("x",)]
    assert store.query_user(f"SELECT count() FROM system.parts WHERE database = '{db}' AND active")[1][0][0] >= 1
    assert store.query_user("SELECT sum(number) FROM numbers(10)")[1] == [(45,)]
    assert store.query_user("SELECT domain('https://example.com/x'), upper('a'), 7 % 3")[1] == [("example.com", "A", 1)]
    assert store.query_user("EXPLAIN SELECT count() FROM alerts")[1]
    assert store.query_user(f"SELECT dictGet('{db}.dict_status', 'reason', toUInt64(404)), "
                            "dictGetOrDefault('dict_status', 'class', toUInt64(503), '')")[1] == [("Not Found", "5xx")]
    # a table of the other database is not reachable unqualified either: the session reads analytics
    with pytest.raises(StoreError) as missing:
        store.query_user("SELECT * FROM secret")
    assert missing.value.code == 60  # UNKNOWN_TABLE


def test_parameters_are_bound_by_clickhouse_and_must_be_placeholders(store):
    hostile = "x' OR 1=1 --"
    assert store.query_user("SELECT {v:String} AS v", {"v": hostile})[1] == [(hostile,)]
    with pytest.raises(QueryRefused, match="placeholder"):
        store.query_user("SELECT 1", {"v": "unused"})
    with pytest.raises(QueryRefused, match="placeholder"):
        store.query_user("SELECT 5 %(v)s", {"v": "1"})  # client-side formatting is not binding


def test_every_panel_query_passes_the_check(store):
    for panel in SQL_PANELS:
        check_query(store.parse_query(panel_sql(panel, store.database)), store.database)


def test_every_function_of_the_denied_categories_is_denied(store):
    listed = store.query_rows("SELECT name, categories FROM system.functions WHERE is_aggregate = 0")[1]
    denied_categories = {name for name, categories in listed
                         if any(c.strip() in DENIED_CATEGORIES for c in categories.split(","))}
    assert len(denied_categories) > 40  # the categories exist in this engine
    assert sorted(name for name in denied_categories if not function_denied(name)) == []
    for fine in ("count", "quantile", "toStartOfInterval", "domain", "cutURLParameter", "sipHash64", "now64"):
        assert not function_denied(fine), fine


def _limited(store: Store, **limits: object) -> Store:
    """A second store on the same engine and database, with other limits."""
    return Store(WarehouseConfig(data_dir=store.config.data_dir, database=store.database,
                                 limits=QueryLimits(**limits)))


def test_a_runaway_query_stops_at_its_limit_while_inserts_go_on(store):
    limited = _limited(store, timeout_s=3.0)
    outcome: dict[str, object] = {}

    def runaway() -> None:
        try:
            limited.query_user("SELECT count() FROM system.numbers WHERE number % 7 = 3")
        except StoreError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=runaway)
    thread.start()
    try:
        stored = []
        for i in range(5):  # the store's writer does not wait for the sandbox's sessions
            store.command(f"INSERT INTO {store.database}.dead_letter (ingest_ts, reason, raw) "
                          f"VALUES (now64(3), 'probe', '{i}')")
            stored.append(store.scalar(f"SELECT count() FROM {store.database}.dead_letter"))
        assert thread.is_alive(), "the runaway query ended before the inserts: it did not run concurrently"
        assert stored == [1, 2, 3, 4, 5]
        assert store.ping()
    finally:
        thread.join(30)
        limited.close()
    error = outcome["error"]
    assert error.code == 159 and error.limit_exceeded  # TIMEOUT_EXCEEDED


def test_results_past_the_row_and_byte_limits_and_memory_past_its_limit_are_errors_not_cuts(store):
    limited = _limited(store, max_result_rows=1000, max_result_bytes=100_000, max_memory_bytes=64 << 20)
    try:
        assert len(limited.query_user("SELECT number FROM numbers(1000)")[1]) == 1000
        with pytest.raises(StoreError) as rows:
            limited.query_user("SELECT number FROM numbers(1001)")
        assert rows.value.code == 396
        with pytest.raises(StoreError) as size:
            limited.query_user("SELECT concat(toString(number), repeat('x', 1000)) FROM numbers(500)")
        assert size.value.code == 396
        with pytest.raises(StoreError) as memory:
            limited.query_user("SELECT groupArray(number) FROM numbers(50000000)")
        assert memory.value.code == 241 and memory.value.limit_exceeded
    finally:
        limited.close()


def test_queries_past_the_concurrency_limit_are_refused_as_busy(store):
    limited = _limited(store, timeout_s=2.0, max_concurrent=1)
    def long_query() -> None:
        with pytest.raises(StoreError):
            limited.query_user("SELECT count() FROM system.numbers")

    thread = threading.Thread(target=long_query)
    thread.start()
    try:
        while limited._sandbox is None or limited._sandbox.qsize():  # until the first holds the only session
            threading.Event().wait(0.01)
        with pytest.raises(StoreBusy):
            limited.query_user("SELECT 1", wait_s=0.1)
    finally:
        thread.join(30)
        limited.close()
