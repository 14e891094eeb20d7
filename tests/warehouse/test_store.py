from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from clickhouse_connect.driver.query import arrow_buffer

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import (
    ALERT_FIELDS,
    DEAD_LETTER_FIELDS,
    DEAD_LETTER_REPLAY_FIELDS,
    FACT_FIELDS,
    FACT_SCHEMA,
    Provenance,
)
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.warehouse import store as store_module
from logpipe.warehouse.errors import StoreError
from logpipe.warehouse.store import SPOOL_PREFIX, schema_statements


def _columns(store, table):
    return store.query_rows(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "ORDER BY position", {"db": store.database, "t": table})[1]


def test_fact_log_ddl_equals_the_event_model(store):
    assert _columns(store, "fact_log") == [(f.name, f.clickhouse) for f in FACT_FIELDS]


def test_low_cardinality_columns_are_arrow_dictionaries_in_the_fact_schema():
    for field in FACT_FIELDS:
        is_dictionary = pa.types.is_dictionary(FACT_SCHEMA.field(field.name).type)
        assert is_dictionary == field.clickhouse.startswith("LowCardinality"), field.name


def test_dead_letter_ddl_equals_the_model(store):
    assert _columns(store, "dead_letter") == [(name, ch) for name, _, ch in DEAD_LETTER_FIELDS]


def test_dead_letter_replay_ddl_equals_the_model(store):
    assert _columns(store, "dead_letter_replay") == [(name, ch) for name, _, ch in DEAD_LETTER_REPLAY_FIELDS]


def test_alerts_ddl_equals_the_model(store):
    assert _columns(store, "alerts") == [(name, ch) for name, _, ch in ALERT_FIELDS]


def test_schema_apply_is_idempotent(store):
    assert store.apply_schema() == store.apply_schema()


def test_schema_files_name_retention_and_dedup_window():
    text = "\n".join(sql for _, sql in schema_statements("analytics", 7))
    assert "INTERVAL 7 DAY" in text
    assert "ttl_only_drop_parts = 1" in text
    tables = dict(re.findall(r"CREATE TABLE IF NOT EXISTS analytics\.(\w+)\n(.*?)(?=\n-- |\Z)", text, flags=re.S))
    fed = {"fact_log", *re.findall(r"MATERIALIZED VIEW IF NOT EXISTS analytics\.\w+ TO analytics\.(\w+)", text)}
    assert fed == {"fact_log", "fact_log_1m", "fact_log_status_1m", "fact_log_errors_1m", "fact_log_ingest_1m",
                   "fact_log_system_1m", "fact_log_latency_1m", "fact_log_endpoint_1h", "fact_log_trace",
                   "dim_service_seen", "dim_endpoint_seen", "dim_host_seen"}
    for table in fed:  # a retried insert is dropped by each table it reaches
        assert "non_replicated_deduplication_window = 10000" in tables[table], table


def _facts(n: int, seed: int = 1) -> pa.Table:
    now = time.time()
    table = TrafficGenerator(seed=seed).generate(n, now - 60, now)
    return normalize_ndjson(encode_ndjson(table), Provenance("simulator")).facts


def test_retried_insert_with_same_token_stores_once_in_facts_and_rollups(store):
    facts = _facts(20_000)
    assert facts.schema == FACT_SCHEMA
    store.insert("fact_log", facts, "batch-1")
    store.insert("fact_log", facts, "batch-1")
    db = store.database
    assert store.scalar(f"SELECT count() FROM {db}.fact_log") == facts.num_rows
    assert store.scalar(f"SELECT sum(events) FROM {db}.fact_log_1m") == facts.num_rows
    assert store.scalar(f"SELECT sum(events) FROM {db}.fact_log_ingest_1m") == facts.num_rows
    requests = pc.sum(pc.equal(facts.column("kind"), "request")).as_py()
    assert store.scalar(f"SELECT sum(requests) FROM {db}.fact_log_status_1m") == requests
    errors = pc.sum(pc.is_in(facts.column("level").cast(pa.string()), pa.array(["ERROR", "FATAL"]))).as_py()
    assert store.scalar(f"SELECT sum(events) FROM {db}.fact_log_errors_1m") == errors > 0
    traced = pc.sum(pc.not_equal(facts.column("trace_id"), "")).as_py()
    assert store.scalar(f"SELECT count() FROM {db}.fact_log_trace") == traced > 0
    # the latency states (fed from fact_log_1m's inserts): one insert's, not two
    assert store.scalar(f"SELECT count() FROM {db}.fact_log_latency_1m") == store.scalar(
        f"SELECT count() FROM (SELECT DISTINCT minute, service, source FROM {db}.fact_log_1m WHERE requests > 0)")
    store.insert("fact_log", facts, "batch-2")
    assert store.scalar(f"SELECT count() FROM {db}.fact_log") == 2 * facts.num_rows


def test_a_full_batch_lands_as_one_compact_part(store):
    """A compact part is a handful of files where a wide one is two per column: at 100,000-row
    batches (16 MB, above the engine's default 10 MB limit for compact parts) that is hundreds of
    file creations a second fewer."""
    facts = _facts(100_000, seed=3)
    store.insert("fact_log", facts, "one-batch")
    parts = store.query_rows("SELECT part_type, rows FROM system.parts WHERE database = {db:String} "
                             "AND table = 'fact_log' AND active", {"db": store.database})[1]
    assert parts == [("Compact", facts.num_rows)]


def test_a_steady_stream_of_inserts_keeps_the_active_parts_few(store):
    """Wide merges (merge_selector_base) must still keep up: the engine delays inserts at 1,000
    active parts in a partition and refuses them at 3,000 ("too many parts")."""
    facts = _facts(2_000, seed=4)
    counts = []
    for i in range(300):
        store.insert("fact_log", facts, f"stream-{i}")
        if i % 50 == 49:
            counts.append(store.scalar("SELECT count() FROM system.parts WHERE database = {db:String} "
                                       "AND table = 'fact_log' AND active", {"db": store.database}))
    assert store.scalar(f"SELECT count() FROM {store.database}.fact_log") == 300 * facts.num_rows
    assert max(counts) < 150, counts


def test_batches_normalized_apart_insert_as_one_with_every_value_in_place(store):
    """Each normalized batch has dictionaries of its own (other services first, other hosts); the
    processor concatenates several into one insert, and an IPC file holds one dictionary per field."""
    first, second = _facts(3_000, seed=4), _facts(3_000, seed=5)
    second = second.take(pa.array(range(second.num_rows - 1, -1, -1)))  # another order of first appearance
    both = pa.concat_tables([first, second])
    assert first["host"].chunk(0).dictionary != second["host"].chunk(0).dictionary
    with pytest.raises(pa.ArrowInvalid, match="Dictionary replacement"):
        arrow_buffer(both)  # what clickhouse-connect sends a server: an IPC file
    arrow_buffer(store_module.one_dictionary_per_field(both))
    store.insert("fact_log", both, "two-batches")
    columns = "event_id, service, kind, level, method, endpoint, host, region, error_code, source, topic"
    stored = store.query_rows(f"SELECT {columns} FROM {store.database}.fact_log ORDER BY event_id")[1]
    names = columns.split(", ")
    expected = sorted(tuple(row[name] for name in names) for row in both.select(names).to_pylist())
    assert stored == expected


def test_rollup_agrees_with_raw_rows(store):
    facts = _facts(30_000, seed=2)
    store.insert("fact_log", facts, "t")
    db = store.database
    raw = store.query_rows(f"SELECT service, countIf(status >= 500), countIf(kind = 'request') FROM {db}.fact_log "
                           "GROUP BY service ORDER BY service")[1]
    rolled = store.query_rows(f"SELECT service, sum(errors_5xx), sum(requests) FROM {db}.fact_log_1m "
                              "GROUP BY service ORDER BY service")[1]
    assert raw == rolled


def test_readonly_queries_refuse_writes_with_a_permanent_error(store):
    with pytest.raises(StoreError) as info:
        store.query_rows(f"INSERT INTO {store.database}.dead_letter (reason) VALUES ('x')")
    assert info.value.code == 164 and not info.value.retryable


def _spool_files() -> set[Path]:
    """Spool files anywhere an insert could have put one."""
    return {path for folder in {Path(tempfile.gettempdir()), Path("/dev/shm")} if folder.is_dir()
            for path in folder.glob(f"{SPOOL_PREFIX}*")}


@pytest.mark.parametrize("in_memory", [True, False], ids=["memfd", "temp-file"])
def test_embedded_insert_leaves_no_spool_file_and_quotes_its_token(store, monkeypatch, in_memory):
    if in_memory and not store_module.memory_spool_available():
        pytest.skip("no memfd here")
    monkeypatch.setattr(store_module, "memory_spool_available", lambda: in_memory)
    spooled_before = _spool_files()
    facts = _facts(5_000, seed=3 if in_memory else 4)
    token = f"it's a \\ token ({in_memory})"
    store.insert("fact_log", facts, token)
    store.insert("fact_log", facts, token)  # the same awkward token still deduplicates
    assert store.scalar(f"SELECT count() FROM {store.database}.fact_log WHERE event_id IN "
                        "{ids:Array(String)}", {"ids": facts.column("event_id").to_pylist()}) == facts.num_rows
    with pytest.raises(StoreError) as info:  # a batch the table cannot take fails for good
        store.insert("fact_log", pa.table({"no_such_column": [1]}), "bad")
    assert not info.value.retryable
    assert _spool_files() == spooled_before


def test_a_process_killed_during_an_insert_leaves_no_spool_behind():
    """Crash tests kill processors mid-insert all the time; a file per kill would fill tmpfs."""
    spooled_before = _spool_files()
    script = textwrap.dedent("""
        import os, signal, pyarrow as pa
        from logpipe.warehouse.store import spooled_arrow
        with spooled_arrow(pa.table({"a": list(range(100_000))})) as path:
            assert os.path.getsize(path) > 800_000
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    finished = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert finished.returncode == -signal.SIGKILL
    assert _spool_files() == spooled_before

