"""A store owned by another logpipe process, reached through that process's HTTP API.

An embedded (chdb) data directory belongs to one process. Processor workers that share it send
their batches as Arrow IPC to the owner (``POST /v1/warehouse/{table}``) with the same
insert_deduplication_token they would give ClickHouse, and read through ``POST /v1/query``.
The URL scheme is ``logpipe+http://host:port``; calls carry the config's ``api_token`` as a bearer token
(inserts need the admin role, reads the read role).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pyarrow as pa

from logpipe.warehouse.base import wait_until_ready
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.errors import PERMANENT_ERROR_CODES, StoreError

REMOTE_SCHEME = "logpipe+"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def arrow_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_arrow_ipc(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


class RemoteStore:
    """A ``base.Warehouse`` over the owner's API: insert, parameterized reads, ping."""

    embedded = False

    def __init__(self, config: WarehouseConfig, timeout_s: float = 60.0):
        self.config = config
        self.database = config.database
        self.base = config.url.removeprefix(REMOTE_SCHEME).rstrip("/")
        headers = {"Authorization": f"Bearer {config.api_token}"} if config.api_token else {}
        self._http = httpx.Client(base_url=self.base, timeout=timeout_s, headers=headers)

    def _call(self, path: str, **request: Any) -> httpx.Response:
        try:
            response = self._http.post(path, **request)
        except httpx.HTTPError as exc:
            raise StoreError(f"store owner at {self.base} unreachable: {exc}", None, True) from exc
        if response.status_code == 200:
            return response
        detail = _detail(response)
        code = detail.get("code") if isinstance(detail, dict) else None
        retryable = response.status_code >= 500 or (code is not None and code not in PERMANENT_ERROR_CODES)
        raise StoreError(f"store owner at {self.base}: HTTP {response.status_code} {detail}", code, retryable)

    def apply_schema(self) -> list[str]:
        return []  # the owner applies the schema when it opens the store

    def insert(self, table: str, data: pa.Table, token: str | None = None) -> None:
        self._call(f"/v1/warehouse/{table}", content=arrow_ipc(data),
                   params={"token": token} if token else None, headers={"content-type": ARROW_STREAM})

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True,
                   ) -> tuple[list[str], list[tuple]]:
        body = orjson.loads(self._call("/v1/query", json={"sql": sql, "parameters": parameters or {}}).content)
        return body["columns"], [tuple(row) for row in body["rows"]]

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = self.query_rows(sql, parameters)[1]
        return rows[0][0] if rows else None

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_until_ready(self.ping, f"store owner at {self.base}", timeout_s)

    def close(self) -> None:
        self._http.close()


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail")
    except ValueError:
        return response.text[:500]
