"""The sink contract shared by the ClickHouse fact sink, the dead-letter sinks and test sinks."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa


class Sink(Protocol):
    """Writes whole batches.

    ``write`` must be idempotent for a given token: writing the same batch with the same token
    twice stores it once. It raises ``logpipe.warehouse.errors.StoreError`` (or a subclass of it with
    ``retryable``) on failure; the checkpoint retries retryable errors with the same token.
    """

    name: str

    def write(self, batch: pa.Table, token: str) -> None: ...
