"""A full channel makes the ingest API answer 429 (never a hang) and the simulator wait."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from logpipe.apps.up import Pipeline
from logpipe.config import Settings
from logpipe.events import Provenance
from logpipe.gateway.app import create_app
from logpipe.transport.channel import Channel, ChannelFull, Envelope
from tests.conftest import bearer, registry_of


def test_channel_blocks_then_refuses_when_full():
    channel = Channel(max_events=100)
    channel.put(Envelope(b"", 80, Provenance("t")))
    with pytest.raises(ChannelFull):
        channel.put(Envelope(b"", 30, Provenance("t")), timeout=0)
    released = threading.Event()

    def producer():
        channel.put(Envelope(b"", 30, Provenance("t")), timeout=5)
        released.set()

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.2)
    assert not released.is_set()  # waiting: backpressure, not unbounded memory
    assert channel.get(timeout=1).events == 80
    thread.join(5)
    assert released.is_set() and channel.events == 30


def test_ingest_answers_429_when_the_processor_cannot_keep_up(store_dir, tokens):
    settings = Settings(data_dir=store_dir, clickhouse_database=f"bp_{uuid.uuid4().hex[:8]}",
                        sim_enabled=False, queue_max_events=1000, ack_timeout_s=2, otlp_enabled=False,
                        syslog_enabled=False)
    pipeline = Pipeline(settings)
    with TestClient(create_app(pipeline.services(), registry_of(tokens)), headers=bearer(tokens["admin"])) as client:
        pipeline.processor.pause()
        line = b'{"ts": %.3f, "service": "auth"}\n' % time.time()
        statuses = []
        for _ in range(3):
            response = client.post("/v1/logs", content=line * 600)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
        # the first waits for durability it cannot get (503), later ones are refused at once (429)
        assert statuses[0] == 503 and 429 in statuses[1:]
        assert client.get("/healthz").status_code == 503
        pipeline.processor.resume()
        response = client.post("/v1/logs", content=line * 10)
        assert response.status_code == 200 and response.json()["accepted"] == 10


def test_the_channel_is_bounded_by_bytes_as_well_as_events():
    channel = Channel(max_events=100_000, max_bytes=1000)
    channel.put(Envelope(b"x" * 600, 1, Provenance("t")))
    with pytest.raises(ChannelFull):  # two events only, but 1,200 bytes
        channel.put(Envelope(b"y" * 600, 1, Provenance("t")), timeout=0)
    assert (channel.events, channel.bytes) == (1, 600)
    channel.put(Envelope(b"z" * 300, 1, Provenance("t")), timeout=0)
    assert channel.get(timeout=1).payload == b"x" * 600
    assert (channel.events, channel.bytes) == (1, 300)
    lone = Channel(max_events=100_000, max_bytes=10)
    lone.put(Envelope(b"w" * 50, 1, Provenance("t")), timeout=0)  # larger than the bound, into an empty channel
    assert lone.bytes == 50


def test_a_post_beyond_the_body_bytes_in_flight_is_refused_at_once_until_the_first_is_stored(store_dir, tokens):
    settings = Settings(data_dir=store_dir, clickhouse_database=f"bp_{uuid.uuid4().hex[:8]}",
                        sim_enabled=False, max_body_bytes=64 * 1024, ack_timeout_s=3, otlp_enabled=False,
                        syslog_enabled=False)
    pipeline = Pipeline(settings)
    line = b'{"ts": %.3f, "service": "auth"}\n' % time.time()
    large, small = line * (40 * 1024 // len(line)), line * 100
    with TestClient(create_app(pipeline.services(), registry_of(tokens)), headers=bearer(tokens["admin"])) as client:
        pipeline.processor.pause()
        held: list[int] = []
        first = threading.Thread(target=lambda: held.append(client.post("/v1/logs", content=large).status_code))
        first.start()
        deadline = time.monotonic() + 5
        while pipeline.engine.queued == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        # the first body waits for its rows to be stored, so its bytes are still in flight
        refused = client.post("/v1/logs", content=large)
        assert refused.status_code == 429 and "in flight" in refused.json()["detail"]
        assert int(refused.headers["retry-after"]) >= 1
        pipeline.processor.resume()
        assert client.post("/v1/logs", content=small).json()["accepted"] == 100
        first.join(10)
        assert held == [200]
