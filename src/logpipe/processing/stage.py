"""What every stream-processing process does around its engine (``logpipe process``, ``logpipe spark``):
open the store and the topics before consuming, and report health in one shape."""

from __future__ import annotations

from typing import Any

from logpipe.config import Settings
from logpipe.transport.kafka import ensure_topics
from logpipe.warehouse.store import open_store


def open_stage_store(settings: Settings) -> Any:
    """The store (embedded, server, or another process's) with its schema, and the topics, ready."""
    store = open_store(settings.warehouse())
    store.wait_ready(60)
    store.apply_schema()
    ensure_topics(settings.kafka_config())
    return store


def stage_health(store: Any, engine: str, engine_up: bool, **details: Any) -> dict[str, Any]:
    store_ok = store.ping()
    return {"status": "ok" if engine_up and store_ok else "degraded",
            "components": {engine: {"status": "up" if engine_up else "down", **details},
                           "store": {"status": "up" if store_ok else "down"}}}
