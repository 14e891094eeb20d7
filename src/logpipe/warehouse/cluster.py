"""The schema for a ClickHouse cluster, generated from the single-node DDL files (one source).

Each table becomes ``<name>_local`` on every node (ON CLUSTER), with the Replicated variant of its
engine, and a ``Distributed`` table of the original name over it; the rollup's materialized view
reads and writes the local tables. Views and dictionaries are created on every node over the
Distributed tables; the schema's inserts (the status codes, the backfills) run once, through them.
Deduplication: replicated tables keep the last
``replicated_deduplication_window`` insert tokens in Keeper, so a retried batch is dropped by
whichever replica receives it; inserting through the Distributed table with
``insert_distributed_sync = 1`` and a deterministic sharding key (``cityHash64(event_id)``) sends a
retried batch to the same shard with the same token.
"""

from __future__ import annotations

import re

from logpipe.warehouse.store import schema_statements

TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\n")
ALTER = re.compile(r"ALTER TABLE (\w+)\.(\w+) ")
DROP_VIEW = re.compile(r"DROP VIEW IF EXISTS (\w+)\.(\w+)$")
KEY = re.compile(r",\s*MODIFY ORDER BY \([^)]*\)")  # a Distributed table has no sorting key
VIEW = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+) TO (\w+)\.(\w+) AS")
PLAIN_VIEW = re.compile(r"CREATE (VIEW|DICTIONARY) IF NOT EXISTS (\w+)\.(\w+)\b")
INSERT = re.compile(r"^INSERT INTO (\w+)\.(\w+)\b", re.M)
ENGINE = re.compile(r"ENGINE = (\w*)MergeTree(?:\(([^)]*)\))?")
# A table read with FINAL keeps each key on one shard, where FINAL sees all its versions.
SHARDING_KEYS = {"fact_log": "cityHash64(event_id)", "dim_service_catalog": "cityHash64(service)",
                 "dim_time": "toUInt32(hour)", "dim_status": "status", "dead_letter_replay": "id"}


def cluster_statements(database: str, retention_days: int, cluster: str,
                       dictionary_user: str = "") -> list[tuple[str, str]]:
    out = []
    for name, sql in schema_statements(database, retention_days, dictionary_user):
        if "CREATE DATABASE" in sql:
            out.append((name, f"{sql} ON CLUSTER '{cluster}'"))
            continue
        table = TABLE.search(sql)
        if table:
            db, base = table.groups()
            local = f"{base}_local"
            sql = TABLE.sub(f"CREATE TABLE IF NOT EXISTS {db}.{local} ON CLUSTER '{cluster}'\n", sql, count=1)
            path = f"/clickhouse/tables/{{shard}}/{db}/{local}"
            sql = ENGINE.sub(lambda m, path=path: f"ENGINE = Replicated{m.group(1)}MergeTree('{path}', '{{replica}}'"
                             + (f", {m.group(2)})" if m.group(2) else ")"), sql)
            sql = sql.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
            out.append((name, sql))
            key = SHARDING_KEYS.get(base, "rand()")
            out.append((name.replace(".sql", "_distributed.sql"),
                        f"CREATE TABLE IF NOT EXISTS {db}.{base} ON CLUSTER '{cluster}' AS {db}.{local}\n"
                        f"ENGINE = Distributed('{cluster}', {db}, {local}, {key})"))
            continue
        alter = ALTER.search(sql)
        if alter:  # the local tables and the Distributed one over them both change
            db, base = alter.groups()
            out.append((name, ALTER.sub(f"ALTER TABLE {db}.{base}_local ON CLUSTER '{cluster}' ", sql, count=1)))
            if "ADD INDEX" in sql or "DROP INDEX" in sql:  # skip indexes are the local tables' own
                continue
            out.append((name.replace(".sql", "_distributed.sql"),
                        KEY.sub("", ALTER.sub(f"ALTER TABLE {db}.{base} ON CLUSTER '{cluster}' ", sql, count=1))))
            continue
        dropped = DROP_VIEW.search(sql)
        if dropped:
            out.append((name, f"{sql} ON CLUSTER '{cluster}'"))
            continue
        if INSERT.search(sql):  # through the Distributed tables, once for the cluster
            out.append((name, sql))
            continue
        plain = PLAIN_VIEW.search(sql)
        if plain:  # on every node, reading the Distributed tables
            kind, db, view_name = plain.groups()
            out.append((name, PLAIN_VIEW.sub(f"CREATE {kind} IF NOT EXISTS {db}.{view_name} ON CLUSTER '{cluster}'",
                                             sql, count=1)))
            continue
        view = VIEW.search(sql)
        if view:
            db, mv, target_db, target = view.groups()
            sql = VIEW.sub(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{mv} ON CLUSTER '{cluster}' "
                           f"TO {target_db}.{target}_local AS", sql)
            sql = re.sub(rf"FROM {db}\.(\w+)\b", rf"FROM {db}.\1_local", sql)
            out.append((name, sql))
            continue
        raise ValueError(f"{name}: no cluster form for this statement")
    return out


def render(statements: list[tuple[str, str]], header: str) -> str:
    """One SQL file, statements separated by ``;`` (the ClickHouse image's initdb runs it whole)."""
    return header + "".join(f"\n-- {name}\n{sql};\n" for name, sql in statements)
