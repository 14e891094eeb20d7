"""What every store offers its callers, whichever backend it is: the ``Warehouse`` protocol.

``store.Store`` implements it over clickhouse-connect (chdb or a ClickHouse server) and
``remote.RemoteStore`` over the HTTP API of the process that owns an embedded store;
``connect.open_store`` picks one from the configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from logpipe.warehouse.errors import StoreError


class Warehouse(Protocol):
    database: str

    @property
    def embedded(self) -> bool: ...

    def apply_schema(self) -> list[str]:
        """Create what is missing; safe to run at every start."""
        ...

    def insert(self, table: str, data: pa.Table, token: str | None = None) -> None:
        """Insert whole rows; the same token makes a retried insert a no-op."""
        ...

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None, readonly: bool = True,
                   ) -> tuple[list[str], list[tuple]]:
        """One of logpipe's own queries, parameters bound by ClickHouse."""
        ...

    def scalar(self, sql: str, parameters: dict[str, Any] | None = None) -> Any: ...

    def ping(self) -> bool: ...

    def wait_ready(self, timeout_s: float = 30.0) -> None: ...

    def close(self) -> None: ...


def wait_until_ready(ping: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ping():
        if time.monotonic() > deadline:
            raise StoreError(f"{what} is not answering", None, True)
        time.sleep(0.3)
