"""The cluster schema, generated from the single-node DDL: no cluster runs here, so its shape is
checked, and ClickHouse's own parser reads every statement."""

from __future__ import annotations

import re

import pytest

from logpipe.warehouse.cluster import SHARDING_KEYS, cluster_statements
from logpipe.warehouse.store import schema_statements

CLUSTER = "logpipe"


@pytest.fixture(scope="module")
def statements() -> list[tuple[str, str]]:
    return cluster_statements("analytics", 30, CLUSTER, "logpipe_dictionaries")


def test_every_statement_parses_and_runs_on_every_node_or_once_through_the_distributed_tables(store, statements):
    for name, sql in statements:
        body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
        parsed = store.query_rows("SELECT formatQuerySingleLine({sql:String})", {"sql": body})[1][0][0]
        if body.lstrip().startswith("INSERT"):
            assert "ON CLUSTER" not in parsed and "_local" not in parsed, name
        else:
            assert f"ON CLUSTER {CLUSTER}" in parsed, name


def test_each_table_is_replicated_locally_with_a_distributed_table_over_it(statements):
    single = {re.search(r"CREATE TABLE IF NOT EXISTS analytics\.(\w+)", sql).group(1): sql
              for _, sql in schema_statements("analytics", 30) if "CREATE TABLE" in sql}
    text = "\n".join(sql for _, sql in statements)
    for table, sql in single.items():
        engine = re.search(r"ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?", sql)
        local = re.search(rf"CREATE TABLE IF NOT EXISTS analytics\.{table}_local ON CLUSTER '{CLUSTER}'\n.*?"
                          rf"ENGINE = Replicated{engine.group(1)}MergeTree\('/clickhouse/tables/{{shard}}/analytics/"
                          rf"{table}_local', '{{replica}}'(?:, ([^)]*))?\)", text, flags=re.S)
        assert local, table
        assert local.group(1) == engine.group(2), table  # a version column stays the engine's
        key = SHARDING_KEYS.get(table, "rand()")
        assert (f"CREATE TABLE IF NOT EXISTS analytics.{table} ON CLUSTER '{CLUSTER}' AS analytics.{table}_local\n"
                f"ENGINE = Distributed('{CLUSTER}', analytics, {table}_local, {key})") in text, table


def test_a_table_read_with_final_keeps_each_key_on_one_shard(statements):
    """FINAL merges a key's rows on each shard only: the sharding key must be a function of the table's
    sorting key, or two versions of one key land on two shards and both are read."""
    single = dict(schema_statements("analytics", 30))
    read_final = set(re.findall(r"analytics\.(\w+) FINAL", "\n".join(single.values())))
    from logpipe.warehouse import queries

    read_final |= set(re.findall(r"\{db\}\.(\w+) FINAL", queries.CATALOG_ENTRIES))
    assert read_final == {"dim_service_catalog", "dim_status"}
    for table in read_final | {"dim_time"}:
        sql = next(sql for sql in single.values() if f"CREATE TABLE IF NOT EXISTS analytics.{table}\n" in sql)
        order = re.search(r"ORDER BY \(?(\w+)", sql).group(1)
        assert order in SHARDING_KEYS[table], table


def test_views_read_local_tables_and_write_local_tables(statements):
    for name, sql in statements:
        view = re.search(r"CREATE MATERIALIZED VIEW IF NOT EXISTS analytics\.(\w+) ON CLUSTER '\w+' "
                         r"TO analytics\.(\w+) AS", sql)
        if view:
            assert view.group(2).endswith("_local"), name
            assert all(t.endswith("_local") for t in re.findall(r"FROM analytics\.(\w+)", sql)), name
