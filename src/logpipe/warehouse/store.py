"""The ClickHouse store: one clickhouse-connect client for the embedded engine (chdb) and for servers.

One process owns an embedded data directory; other processes reach it through that
process's HTTP API (``POST /v1/query``), never by opening the directory themselves.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.binding import format_str, quote_identifier
from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

from logpipe import metrics
from logpipe.warehouse.config import WarehouseConfig

if TYPE_CHECKING:
    from logpipe.warehouse.remote import RemoteStore

# Server error codes that retrying cannot fix: the data or the statement is wrong.
PERMANENT_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    8,    # THERE_IS_NO_COLUMN
    16,   # NO_SUCH_COLUMN_IN_TABLE
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    47,   # UNKNOWN_IDENTIFIER
    53,   # TYPE_MISMATCH
    60,   # UNKNOWN_TABLE
    62,   # SYNTAX_ERROR
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    81,   # UNKNOWN_DATABASE
    117,  # INCORRECT_DATA
    164,  # READONLY
    497,  # ACCESS_DENIED
})


class StoreError(Exception):
    def __init__(self, message: str, code: int | None, retryable: bool):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


def classify(exc: BaseException) -> StoreError:
    """The one place that decides whether a store error is worth retrying."""
    if isinstance(exc, StoreError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(exc, OperationalError):
        return StoreError(f"ClickHouse unreachable: {exc}", code, True)
    if isinstance(exc, ClickHouseError | DatabaseError) and code is not None:
        return StoreError(str(exc), int(code), int(code) not in PERMANENT_ERROR_CODES)
    if isinstance(exc, OSError | TimeoutError):
        return StoreError(f"ClickHouse transport error: {exc}", None, True)
    return StoreError(f"{type(exc).__name__}: {exc}", code, False)


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


def wait_until_ready(ping: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ping():
        if time.monotonic() > deadline:
            raise StoreError(f"{what} is not answering", None, True)
        time.sleep(0.3)


def schema_statements(database: str, retention_days: int) -> list[tuple[str, str]]:
    """The DDL files of ``warehouse/sql`` in order, with their parameters filled in."""
    folder = resources.files("logpipe.warehouse") / "sql"
    statements = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            text = entry.read_text().replace("{{database}}", database)
            text = text.replace("{{retention_days}}", str(int(retention_days)))
            statements.append((entry.name, text.strip().rstrip(";")))
    return statements


class Store:
    def __init__(self, config: WarehouseConfig):
        self.config = config
        self.database = config.database
        self._lock = threading.RLock()
        self._client = self._connect()
        # Reads go through their own client whose session is readonly=1 for good: a per-query
        # setting would stick to the embedded engine's session after an error.
        self._reader = self._connect(readonly=True)

    def _connect(self, readonly: bool = False) -> Any:
        config = self.config
        settings = {"readonly": 1} if readonly else {}
        if config.embedded:
            config.embedded_path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(interface="chdb", path=str(config.embedded_path),
                                                 settings=settings)
        parsed = urlparse(config.url)
        return clickhouse_connect.get_client(
            interface=parsed.scheme or "http", host=parsed.hostname or "localhost",
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=parsed.username or "default", password=parsed.password or "",
            autogenerate_session_id=False, connect_timeout=5, send_receive_timeout=60, settings=settings)

    @property
    def embedded(self) -> bool:
        return self.config.embedded

    @contextmanager
    def _session(self, readonly: bool = False) -> Iterator[Any]:
        # chdb is one engine per process; serializing calls keeps its connection handles safe.
        with self._lock:
            try:
                yield self._reader if readonly else self._client
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
        with self._session() as client:
            for name, statement in schema_statements(self.database, self.config.retention_days):
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
        with self._session() as client:
            client.insert_arrow(f"{self.database}.{table}", data, settings=settings)

    def _insert_embedded(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        """The engine reads an Arrow IPC file that Arrow wrote straight into memory: the batch is
        copied once and no batch-sized buffer is allocated (clickhouse-connect's chdb backend would
        serialize into memory first, then copy that into a temp file on disk)."""
        columns = ", ".join(quote_identifier(name) for name in data.schema.names)
        clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
        with spooled_arrow(data) as path, self._session() as client:
            client.command(f"INSERT INTO {table} ({columns}) FROM INFILE {format_str(path)}{clause} FORMAT Arrow")

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True) -> pa.Table:
        with self._session(readonly) as client:
            return client.query_arrow(sql, parameters=parameters, use_strings=True)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True,
                   ) -> tuple[list[str], list[tuple]]:
        with self._session(readonly) as client:
            result = client.query(sql, parameters=parameters)
            return list(result.column_names), result.result_rows

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = self.query_rows(sql, parameters)[1]
        return rows[0][0] if rows else None

    def command(self, sql: str) -> Any:
        with self._session() as client:
            return client.command(sql)

    def ping(self) -> bool:
        try:
            with self._session() as client:
                return bool(client.ping()) if not self.embedded else client.command("SELECT 1") == 1
        except StoreError:
            return False

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_until_ready(self.ping, f"ClickHouse at {self.config.url or self.config.embedded_path}", timeout_s)

    def close(self) -> None:
        with self._lock:
            self._reader.close()
            self._client.close()


def open_store(config: WarehouseConfig) -> Store | RemoteStore:
    """The store a URL names: embedded chdb, a ClickHouse server, or another process's embedded store."""
    if config.owned_elsewhere:
        from logpipe.warehouse.remote import RemoteStore

        return RemoteStore(config)
    return Store(config)
