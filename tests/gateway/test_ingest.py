"""POST /v1/logs as a client meets it: compressed bodies, limits after decompression, idempotent retries,
and never a 2xx for what is not stored as sent."""

from __future__ import annotations

import gzip
import json
import resource
import time
import uuid
import zlib

import orjson
import pytest
import zstandard
from fastapi.testclient import TestClient

from logpipe.apps.up import Pipeline
from logpipe.auth.config import AuthConfig
from logpipe.auth.tokens import TokenRegistry
from logpipe.config import Settings
from logpipe.gateway.app import create_app
from tests.conftest import bearer

LIMIT = 2 << 20


@pytest.fixture(scope="module")
def gateway(store_dir):
    tokens = {"ingest": "i-" + uuid.uuid4().hex, "read": "r-" + uuid.uuid4().hex, "admin": "a-" + uuid.uuid4().hex}
    database = f"in_{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=store_dir, clickhouse_database=database, sim_enabled=False, watch_enabled=False,
                        otlp_enabled=False, syslog_enabled=False,
                        flush_interval_s=0.2, max_body_bytes=LIMIT, max_event_bytes=64 << 10, ack_timeout_s=3)
    pipeline = Pipeline(settings)
    with TestClient(create_app(pipeline.services(), TokenRegistry(AuthConfig(tokens=tokens))),
                    headers=bearer(tokens["ingest"])) as client:
        yield client, pipeline, tokens
        pipeline.store.command(f"DROP DATABASE IF EXISTS {database}")


def _events(run: str, n: int, **extra) -> bytes:
    now = time.time()
    return b"".join(orjson.dumps({"event_id": f"{run}-{i}", "ts": now, "service": "auth", "status": 200, **extra})
                    + b"\n" for i in range(n))


def _stored(pipeline: Pipeline, run: str) -> tuple[int, int]:
    return pipeline.store.query_rows(f"SELECT count(), uniqExact(event_id) FROM {pipeline.store.database}.fact_log "
                                     "WHERE startsWith(event_id, {run:String})", {"run": run + "-"})[1][0]


def test_gzip_and_zstd_bodies_are_decompressed_and_stored_as_sent(gateway):
    client, pipeline, _ = gateway
    for encoding, compress in (("gzip", gzip.compress), ("zstd", zstandard.ZstdCompressor().compress),
                               ("GZIP", lambda b: gzip.compress(b[:len(b) // 2]) + gzip.compress(b[len(b) // 2:]))):
        run = uuid.uuid4().hex[:8]
        body = _events(run, 500)
        response = client.post("/v1/logs", content=compress(body), headers={"Content-Encoding": encoding})
        assert response.status_code == 200, (encoding, response.text)
        assert response.json()["accepted"] == 500
        assert _stored(pipeline, run) == (500, 500)


def test_a_bad_or_unknown_encoding_is_a_clear_error(gateway):
    client, _, _ = gateway
    body = _events("enc", 3)
    assert client.post("/v1/logs", content=body, headers={"Content-Encoding": "br"}).status_code == 415
    assert client.post("/v1/logs", content=b"not gzip", headers={"Content-Encoding": "gzip"}).status_code == 400
    truncated = gzip.compress(body)[:-12]
    assert client.post("/v1/logs", content=truncated, headers={"Content-Encoding": "gzip"}).status_code == 400
    assert client.post("/v1/logs", content=b"\x28\xb5\x2f\xfd junk", headers={"Content-Encoding": "zstd"}
                       ).status_code == 400


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def test_a_decompression_bomb_is_refused_past_the_limit_without_memory_growing(gateway):
    """1 GB of zeros, as gzip members and zstd frames of 16 MiB: refused once the output passes the body
    limit (2 MiB here), never decompressed whole."""
    client, _, _ = gateway
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    frame = zstandard.ZstdCompressor(level=1).compress(b"\0" * (16 << 20))
    for encoding, bomb in (("gzip", member * 64), ("zstd", frame * 64)):
        before = _rss_mb()
        response = client.post("/v1/logs", content=bomb, headers={"Content-Encoding": encoding})
        assert response.status_code == 413 and "once decompressed" in response.text, encoding
        assert _rss_mb() - before < 200, encoding  # the bomb is 1 GiB decompressed; the limit is 2 MiB


def test_the_body_limit_counts_decompressed_bytes(gateway):
    client, _, _ = gateway
    body = _events("big", 30000)  # about 2.3 MB plain: past the 2 MiB limit
    assert len(body) > LIMIT and len(zlib.compress(body)) < LIMIT
    response = client.post("/v1/logs", content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert client.post("/v1/logs", content=body).status_code == 413


def test_an_event_past_the_event_limit_is_a_413_naming_it(gateway):
    client, pipeline, _ = gateway
    run = uuid.uuid4().hex[:8]
    body = _events(run, 2) + _events(run + "x", 1, message="m" * (70 << 10))
    response = client.post("/v1/logs", content=body)
    assert response.status_code == 413 and "line 2" in response.text and "LOGPIPE_MAX_EVENT_BYTES" in response.text
    assert _stored(pipeline, run) == (0, 0)  # nothing of the request


def test_values_out_of_range_are_dead_letters_with_their_reason_never_changed(gateway):
    client, pipeline, _ = gateway
    run = uuid.uuid4().hex[:8]
    now = time.time()
    records = [{"event_id": f"{run}-ok", "ts": now, "service": "auth", "bytes": 2**64 - 1},
               {"event_id": f"{run}-big", "ts": now, "service": "auth", "bytes": 2**64},
               {"event_id": f"{run}-inf", "ts": now, "service": "auth", "latency_ms": 1e39},
               {"event_id": f"{run}-future", "ts": now + 3600, "service": "auth"},
               {"event_id": f"{run}-old", "ts": now - 40 * 86400, "service": "auth"},
               {"event_id": f"{run}-list", "ts": now, "service": ["x"]},
               {"event_id": f"{run}-ctl", "ts": now, "service": "a\u0007b"},
               {"event_id": f"{run}-long", "ts": now, "service": "s" * 129},
               {"event_id": f"{run}-deep", "ts": now, "service": "auth", "x": json.loads("[" * 40 + "]" * 40)}]
    body = "\n".join(json.dumps(r) for r in records).encode()
    response = client.post("/v1/logs", content=body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 8)
    assert [e["index"] for e in answer["errors"]] == list(range(1, 9))
    rows = pipeline.store.query_rows(f"SELECT event_id, bytes FROM {pipeline.store.database}.fact_log "
                                     "WHERE startsWith(event_id, {run:String})", {"run": run})[1]
    assert rows == [(f"{run}-ok", 2**64 - 1)]


def test_a_json_array_nested_past_the_encoder_is_a_400_not_a_server_error(gateway):
    client, _, _ = gateway
    deep = "[" + "{\"ts\": 1, \"service\": \"a\", \"x\": " + "[" * 300 + "]" * 300 + "}]"
    response = client.post("/v1/logs", content=deep.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400 and "item 0" in response.text


def test_a_retry_with_the_same_idempotency_key_stores_the_events_once(gateway):
    client, pipeline, _ = gateway
    run = uuid.uuid4().hex[:8]
    body = _events(run, 300)
    first = client.post("/v1/logs", content=body, headers={"Idempotency-Key": run})
    again = client.post("/v1/logs", content=body, headers={"Idempotency-Key": run})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert _stored(pipeline, run) == (300, 300)
    other = client.post("/v1/logs", content=_events(run + "z", 1), headers={"Idempotency-Key": run})
    assert other.status_code == 422 and "another body" in other.text
    without = client.post("/v1/logs", content=body)  # no key: a retry is new events (ids repeat here)
    assert without.status_code == 200 and _stored(pipeline, run) == (600, 300)


def test_a_retry_after_a_timeout_waits_for_the_first_and_stores_once(gateway):
    client, pipeline, tokens = gateway
    run = uuid.uuid4().hex[:8]
    body = _events(run, 50)
    admin = bearer(tokens["admin"])
    assert client.put("/v1/processor", json={"running": False}, headers=admin).status_code == 200
    try:
        timed_out = client.post("/v1/logs", content=body, headers={"Idempotency-Key": run})
        assert timed_out.status_code == 503 and "same Idempotency-Key" in timed_out.text
    finally:
        client.put("/v1/processor", json={"running": True}, headers=admin)
    retried = client.post("/v1/logs", content=body, headers={"Idempotency-Key": run})
    assert retried.status_code == 200 and retried.json()["accepted"] == 50
    assert _stored(pipeline, run) == (50, 50)


def test_a_normalization_defect_is_a_5xx_that_claims_nothing_and_keeps_the_batch(gateway, monkeypatch):
    client, pipeline, _ = gateway
    run = uuid.uuid4().hex[:8]

    def broken(*args, **kwargs):
        raise RuntimeError("a defect")

    monkeypatch.setattr("logpipe.processing.processor.normalize_ndjson", broken)
    response = client.post("/v1/logs", content=_events(run, 5))
    assert response.status_code == 503 and "accepted" not in response.text
    assert "nothing of it was stored" in response.text
    monkeypatch.undo()
    db = pipeline.store.database

    def kept() -> int:
        return pipeline.store.scalar(f"SELECT count() FROM {db}.dead_letter WHERE position(raw, {{run:String}}) > 0 "
                                     "AND startsWith(reason, 'processor error')", {"run": run})

    deadline = time.monotonic() + 30
    while kept() != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kept() == 1 and _stored(pipeline, run) == (0, 0)
