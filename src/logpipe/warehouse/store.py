"""The ClickHouse store: one clickhouse-connect client for the embedded engine (chdb) and for servers
(a ``base.Warehouse``).

One process owns an embedded data directory; other processes reach it through that
process's HTTP API (``POST /v1/query``), never by opening the directory themselves.
"""

from __future__ import annotations

import os
import queue
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
import orjson
import pyarrow as pa
from clickhouse_connect.driver.binding import format_str, quote_identifier

from logpipe import metrics
from logpipe.warehouse import queries
from logpipe.warehouse.base import wait_until_ready
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.errors import StoreBusy, StoreError, classify
from logpipe.warehouse.sandbox import check_query

SPOOL_PREFIX = "logpipe-insert-"


def memory_spool_available() -> bool:
    """Linux can hand the engine an anonymous in-memory file by path (``/proc/self/fd/N``)."""
    return hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def one_dictionary_per_field(data: pa.Table) -> pa.Table:
    """The table with one dictionary per field across its chunks. Batches normalized apart, then
    concatenated into one insert, each bring their own, and an Arrow IPC file (what the embedded
    insert spools, and what clickhouse-connect's ``insert_arrow`` sends a server) holds one per field."""
    if any(column.num_chunks > 1 and pa.types.is_dictionary(column.type) for column in data.columns):
        return data.unify_dictionaries()
    return data


@contextmanager
def spooled_arrow(data: pa.Table) -> Iterator[str]:
    """The path of an Arrow IPC file holding ``data``, for the engine to read within the block.

    On Linux the file is anonymous memory (memfd): written and read once, never on disk, and the
    kernel frees it with its last descriptor, so a process killed mid-insert leaves nothing behind.
    Elsewhere it is a file in the temp directory, removed when the block ends."""
    temporary = None
    if memory_spool_available():
        descriptor = os.memfd_create(SPOOL_PREFIX, os.MFD_CLOEXEC)
        path = f"/proc/self/fd/{descriptor}"
    else:
        descriptor, temporary = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=".arrow")
        path = temporary
    try:
        try:
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
                writer.write_table(data)
        except OSError as exc:  # out of memory or disk, say: worth retrying once there is room
            raise StoreError(f"spooling the batch for the engine failed: {exc}", None, True) from exc
        yield path
    finally:
        os.close(descriptor)
        if temporary is not None:
            os.unlink(temporary)


def _settings_clause(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name} = {format_str(str(value)) if isinstance(value, str) else int(value)}"
                     for name, value in settings.items())


def schema_statements(database: str, retention_days: int, dictionary_user: str = "") -> list[tuple[str, str]]:
    """The DDL files of ``warehouse/sql`` in order, with their parameters filled in. ``dictionary_user``:
    the ClickHouse user the dictionaries read their tables as (empty: the server's default user, and
    the only choice of the embedded engine, which has no users)."""
    if dictionary_user and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", dictionary_user):
        raise ValueError(f"dictionary user {dictionary_user!r}: letters, digits and '_' only")
    folder = resources.files("logpipe.warehouse") / "sql"
    statements = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            text = entry.read_text().replace("{{database}}", database)
            text = text.replace("{{retention_days}}", str(int(retention_days)))
            text = text.replace("{{dictionary_user}}", f"USER '{dictionary_user}' " if dictionary_user else "")
            statements.append((entry.name, text.strip().rstrip(";")))
    return statements


class _Connection:
    """One engine session and the lock that keeps its calls one at a time."""

    def __init__(self, client: Any):
        self.client = client
        self.lock = threading.Lock()


class Store:
    """Writes, internal reads and user queries each go through sessions of their own, so a long user
    query holds up neither inserts nor the processors' and watchdog's reads.

    - the writer: inserts, DDL, ``command``;
    - the reader (``readonly=1``): the pipeline's own queries, whose SQL is logpipe's;
    - the sandbox (``readonly=1`` and ``QueryLimits``): user queries and panels, ``limits.max_concurrent``
      sessions, opened at the first such query.
    """

    def __init__(self, config: WarehouseConfig):
        self.config = config
        self.database = config.database
        self._writer = _Connection(self._connect())
        # Reads go through their own session, readonly=1 for good: a per-query setting would stick to the
        # embedded engine's session after an error. On the embedded engine they take turns with the writes:
        # chdb runs reads beside an insert, but a steady stream of small ones then slowed the inserts more
        # than taking turns did (bench/results/history). User queries do not take turns (the sandbox).
        self._reader = _Connection(self._connect(readonly=True))
        if config.embedded:
            self._reader.lock = self._writer.lock
        self._sandbox: queue.Queue[_Connection] | None = None
        self._sandbox_opened: list[_Connection] = []
        self._sandbox_lock = threading.Lock()
        self._parser: _Connection | None = None

    def _connect(self, readonly: bool = False, sandbox: bool = False) -> Any:
        config = self.config
        settings: dict[str, Any] = {}
        if sandbox:
            settings.update(config.limits.settings())
        if readonly or sandbox:
            settings["readonly"] = 1  # last: once set, the session's settings are fixed
        if config.embedded:
            config.embedded_path.mkdir(parents=True, exist_ok=True)
            # A sandbox session reads the analytics database by default: an unqualified table is one of its.
            return clickhouse_connect.get_client(interface="chdb", path=str(config.embedded_path), settings=settings,
                                                 database=config.database if sandbox else None)
        parsed = urlparse(config.url)
        user, password = config.user, config.password
        if sandbox and config.read_user:
            # the read-only user's settings profile sets its limits and readonly; a client may not change them
            user, password, settings = config.read_user, config.read_password, {}
        elif readonly or sandbox:
            settings["readonly"] = 2  # a server applies each request's settings; the sandbox refuses SETTINGS
        return clickhouse_connect.get_client(
            interface=parsed.scheme or "http", host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=parsed.username or user, password=password,
            database=config.database if sandbox else None,
            autogenerate_session_id=False, connect_timeout=5, send_receive_timeout=60, settings=settings)

    @property
    def embedded(self) -> bool:
        return self.config.embedded

    @contextmanager
    def _session(self, connection: _Connection) -> Iterator[Any]:
        with connection.lock:
            try:
                yield connection.client
            except StoreError:
                raise
            except Exception as exc:
                raise classify(exc) from exc
            finally:
                if self.embedded:  # chdb renamed the thread that ran the query
                    metrics.restore_os_thread_name()

    def apply_schema(self) -> list[str]:
        """Create what is missing; safe to run at every start."""
        applied = []
        with self._session(self._writer) as client:
            for name, statement in schema_statements(self.database, self.config.retention_days,
                                                      self.config.dictionary_user):
                client.command(statement)
                applied.append(name)
        return applied

    def insert(self, table: str, data: pa.Table, token: str | None = None) -> None:
        """Insert an Arrow table; the same token makes a retried insert a no-op."""
        settings = ({"insert_deduplication_token": token, "insert_deduplicate": 1,
                     "deduplicate_blocks_in_dependent_materialized_views": 1} if token else {})
        data = one_dictionary_per_field(data)
        if self.embedded:
            self._insert_embedded(f"{self.database}.{table}", data, settings)
            return
        with self._session(self._writer) as client:
            client.insert_arrow(f"{self.database}.{table}", data, settings=settings)

    def _insert_embedded(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        """The engine reads an Arrow IPC file that Arrow wrote straight into memory: the batch is
        copied once and no batch-sized buffer is allocated (clickhouse-connect's chdb backend would
        serialize into memory first, then copy that into a temp file on disk)."""
        columns = ", ".join(quote_identifier(name) for name in data.schema.names)
        clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
        with spooled_arrow(data) as path, self._session(self._writer) as client:
            client.command(queries.INSERT_ARROW_FILE.format(table=table, columns=columns, path=format_str(path),
                                                           settings=clause))

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True) -> pa.Table:
        with self._session(self._reader if readonly else self._writer) as client:
            return client.query_arrow(sql, parameters=parameters, use_strings=True)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True,
                   ) -> tuple[list[str], list[tuple]]:
        """One of logpipe's own queries (never a user's SQL: see ``query_user``)."""
        with self._session(self._reader if readonly else self._writer) as client:
            result = client.query(sql, parameters=parameters)
            return list(result.column_names), result.result_rows

    def query_limited(self, sql: str, parameters: dict[str, Any] | None = None,
                      wait_s: float = 5.0) -> tuple[list[str], list[tuple]]:
        """A query in a sandbox session, under the ``QueryLimits``: the dashboard's panels, and user
        queries once checked. Raises ``StoreBusy`` when every session stays taken for ``wait_s``."""
        pool = self._sandbox_pool()
        try:
            connection = pool.get(timeout=wait_s)
        except queue.Empty:
            raise StoreBusy(f"{self.config.limits.max_concurrent} queries are running; retry later") from None
        try:
            with self._session(connection) as client:
                result = client.query(sql, parameters=parameters)
                return list(result.column_names), result.result_rows
        finally:
            pool.put(connection)

    def query_user(self, sql: str, parameters: dict[str, Any] | None = None,
                   wait_s: float = 5.0) -> tuple[list[str], list[tuple]]:
        """A user's SQL: parsed by ClickHouse, checked against the sandbox's allowlist (raises
        ``sandbox.QueryRefused``), then run under the limits with its parameters bound by the engine."""
        check_query(self.parse_query(sql), self.database, parameters)
        return self.query_limited(sql, parameters, wait_s)

    def parse_query(self, sql: str) -> dict[str, Any]:
        """ClickHouse's own AST of ``sql`` (``parseQueryToJSON``: one statement only). A server is
        asked nothing: a local in-memory engine parses, so an old server version cannot parse differently."""
        if self.embedded:
            connection = self._reader
        else:
            with self._sandbox_lock:
                if self._parser is None:
                    self._parser = _Connection(clickhouse_connect.get_client(interface="chdb", path=":memory:",
                                                                             settings={"readonly": 1}))
                connection = self._parser
        with self._session(connection) as client:
            text = client.query(queries.PARSE, parameters={"sql": sql}).result_rows[0][0]
        return orjson.loads(text)

    def _sandbox_pool(self) -> queue.Queue[_Connection]:
        with self._sandbox_lock:
            if self._sandbox is None:
                pool: queue.Queue[_Connection] = queue.Queue()
                for _ in range(self.config.limits.max_concurrent):
                    connection = _Connection(self._connect(sandbox=True))
                    self._sandbox_opened.append(connection)
                    pool.put(connection)
                self._sandbox = pool
            return self._sandbox

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = self.query_rows(sql, parameters)[1]
        return rows[0][0] if rows else None

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        with self._session(self._writer) as client:
            return client.command(sql, parameters=parameters)

    def ping(self) -> bool:
        try:
            with self._session(self._writer) as client:
                return bool(client.ping()) if not self.embedded else client.command(queries.PING) == 1
        except StoreError:
            return False

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_until_ready(self.ping, f"ClickHouse at {self.config.url or self.config.embedded_path}", timeout_s)

    def close(self) -> None:
        for connection in (*self._sandbox_opened, *([self._parser] if self._parser else []), self._reader,
                           self._writer):
            with connection.lock:
                connection.client.close()
