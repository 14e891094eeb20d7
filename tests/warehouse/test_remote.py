"""A store served by the process that owns it, reached by others through its HTTP API."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pyarrow as pa
import pytest

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import Provenance
from logpipe.gateway.app import create_store_app
from logpipe.gateway.server import BackgroundServer
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.connect import open_store
from logpipe.warehouse.errors import StoreError
from logpipe.warehouse.remote import RemoteStore
from tests.conftest import bearer, free_port, registry_of


def _facts(n: int, prefix: str) -> pa.Table:
    now = time.time()
    wire = TrafficGenerator(seed=7, id_prefix=f"{prefix}-").generate(n, now - 5, now)
    provenance = Provenance("kafka", "logs.auth", 0, np.arange(wire.num_rows, dtype=np.int64))
    return normalize_ndjson(encode_ndjson(wire), provenance).facts


@pytest.fixture
def served(store, tokens):
    port = free_port()
    server = BackgroundServer(create_store_app(store, lambda: {"status": "ok"}, registry_of(tokens)), "127.0.0.1",
                              port).start()
    remote = open_store(WarehouseConfig(url=f"logpipe+http://127.0.0.1:{port}", database=store.database,
                                        api_token=tokens["admin"]))
    yield store, remote, port
    remote.close()
    server.stop()


def test_a_worker_insert_through_the_owner_is_stored_once_per_token(served):
    store, remote, _ = served
    assert isinstance(remote, RemoteStore)
    remote.wait_ready()
    batch = _facts(1_000, "rm")
    rows = batch.num_rows
    remote.insert("fact_log", batch, "logs.auth:0:0-999")
    remote.insert("fact_log", batch, "logs.auth:0:0-999")  # a worker's retry after a lost answer
    assert store.scalar(f"SELECT count() FROM {store.database}.fact_log") == rows
    assert remote.scalar(f"SELECT maxOrNull(offset) FROM {store.database}.fact_log "
                         "WHERE topic = {t:String} AND partition = {p:Int32}", {"t": "logs.auth", "p": 0}) == rows - 1


def test_the_owner_refuses_what_it_must_not_store(served, tokens):
    store, remote, port = served
    with pytest.raises(StoreError) as refused:
        remote.insert("fact_log", pa.table({"event_id": ["x"]}), "t1")  # columns missing
    assert not refused.value.retryable
    admin = bearer(tokens["admin"])
    assert httpx.post(f"http://127.0.0.1:{port}/v1/warehouse/users", content=b"", headers=admin).status_code == 422
    assert httpx.post(f"http://127.0.0.1:{port}/v1/warehouse/fact_log", content=b"junk",
                      headers=admin).status_code == 400
    with pytest.raises(StoreError) as readonly:
        remote.query_rows(f"DROP TABLE {store.database}.fact_log")
    assert not readonly.value.retryable
    assert store.scalar(f"SELECT count() FROM {store.database}.fact_log") == 0


def test_only_the_admin_role_inserts_into_the_owner(served, tokens):
    store, _, port = served
    batch = _facts(10, "roles")
    for token, status in (("", 401), ("not-a-token", 401), (tokens["read"], 403), (tokens["ingest"], 403)):
        remote = RemoteStore(WarehouseConfig(url=f"logpipe+http://127.0.0.1:{port}", database=store.database,
                                             api_token=token))
        with pytest.raises(StoreError) as refused:
            remote.insert("fact_log", batch, "roles")
        remote.close()
        assert f"HTTP {status}" in str(refused.value) and not refused.value.retryable
    assert store.scalar(f"SELECT count() FROM {store.database}.fact_log") == 0


def test_a_process_that_does_not_own_its_store_serves_no_queries(served, tokens):
    _, remote, _ = served
    port = free_port()
    server = BackgroundServer(create_store_app(remote, lambda: {"status": "ok"}, registry_of(tokens)), "127.0.0.1",
                              port).start()
    try:
        read = bearer(tokens["read"])
        assert httpx.post(f"http://127.0.0.1:{port}/v1/query", content=b"SELECT 1", headers=read).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", headers=read).json() == {"status": "ok"}
    finally:
        server.stop()


def test_an_owner_that_is_gone_is_a_retryable_error():
    remote = RemoteStore(WarehouseConfig(url=f"logpipe+http://127.0.0.1:{free_port()}"))
    with pytest.raises(StoreError) as gone:
        remote.insert("fact_log", _facts(1, "gone"), "t")
    assert gone.value.retryable
