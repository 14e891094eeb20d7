"""The store a configuration names: embedded chdb, a ClickHouse server, or another process's embedded store."""

from __future__ import annotations

from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.remote import RemoteStore
from logpipe.warehouse.store import Store


def open_store(config: WarehouseConfig) -> Warehouse:
    if config.owned_elsewhere:
        return RemoteStore(config)
    return Store(config)
