"""The embedded processor: queued HTTP payloads normalized together, each sender answered for its own."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from logpipe.apps.up import Pipeline
from logpipe.codec.ndjson import encode_ndjson, encode_ndjson_buffer
from logpipe.config import Settings
from logpipe.events import Provenance
from logpipe.metrics import REGISTRY
from logpipe.processing.committer import Committer
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.channel import Envelope

GOOD = b'{"ts": %.3f, "service": "auth", "status": 200}' % time.time()
BAD_TS = b'{"ts": "2026-13-45T00:00:00Z", "service": "auth"}'
NOT_JSON = b'{"ts": "2026-01-01T00:00:00Z", "service": '


def _normalize_calls() -> float:
    return REGISTRY.get_sample_value("logpipe_normalize_seconds_count", {"component": "processor"}) or 0.0


@pytest.fixture
def paused(store_dir) -> Iterator[Pipeline]:
    """An embedded pipeline whose processor takes nothing until resumed, so requests queue up."""
    settings = Settings(data_dir=store_dir, clickhouse_database=f"co_{uuid.uuid4().hex[:8]}", sim_enabled=False,
                        otlp_enabled=False, syslog_enabled=False)
    pipeline = Pipeline(settings)
    pipeline.start()
    pipeline.processor.pause()
    try:
        yield pipeline
    finally:
        pipeline.stop()


def _count(pipeline: Pipeline, table: str) -> int:
    return pipeline.store.scalar(f"SELECT count() FROM {pipeline.settings.clickhouse_database}.{table}")


def test_queued_requests_are_normalized_in_one_call_and_each_gets_its_own_answer(paused: Pipeline):
    pipeline = paused
    payloads = [GOOD + b"\n" + GOOD + b"\n" + GOOD + b"\n",
                b"\n".join([GOOD, NOT_JSON, GOOD, BAD_TS]) + b"\n",
                GOOD + b"\n\n" + GOOD]  # a blank line is not a record
    futures = [pipeline.submit(payload, count) for payload, count in zip(payloads, (3, 4, 2), strict=True)]
    calls_before = _normalize_calls()
    pipeline.processor.resume()
    answers = [future.result(timeout=30) for future in futures]
    assert _normalize_calls() - calls_before == 1
    assert [(a.accepted, a.rejected) for a in answers] == [(3, 0), (2, 2), (2, 0)]
    assert [e["index"] for e in answers[1].errors] == [1, 3]  # positions within the sender's own payload
    assert "ts" in answers[1].errors[1]["reason"]
    assert _count(pipeline, "fact_log") == 7
    assert _count(pipeline, "dead_letter") == 2


def test_counts_that_do_not_add_up_fall_back_to_one_normalization_per_request(paused: Pipeline):
    pipeline = paused
    # the second sender claims three records but sends two: the joined count would not match
    futures = [pipeline.submit(GOOD + b"\n" + BAD_TS + b"\n", 2), pipeline.submit(GOOD + b"\n" + GOOD + b"\n", 3)]
    pipeline.processor.resume()
    answers = [future.result(timeout=30) for future in futures]
    assert [(a.accepted, a.rejected) for a in answers] == [(1, 1), (2, 0)]
    assert answers[0].errors[0]["index"] == 1
    assert _count(pipeline, "fact_log") == 3


def test_in_process_arrow_buffers_and_bytes_are_joined_line_by_line(paused: Pipeline):
    """The simulator hands its NDJSON over in the Arrow buffer it was encoded in; queued with a payload
    whose last line has no newline, each line still becomes exactly one row."""
    pipeline = paused
    now = time.time()
    table = TrafficGenerator(seed=5).generate(50, now - 1, now)
    buffer = encode_ndjson_buffer(table)
    assert isinstance(buffer, pa.Buffer) and buffer.to_pybytes() == encode_ndjson(table)
    calls_before = _normalize_calls()
    for payload, events in ((buffer, table.num_rows), (GOOD, 1), (buffer, table.num_rows)):
        pipeline.engine.channel.put(Envelope(payload, events, Provenance("simulator")))
    pipeline.processor.resume()
    deadline = time.monotonic() + 30
    while _count(pipeline, "fact_log") < 2 * table.num_rows + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _normalize_calls() - calls_before == 1
    assert _count(pipeline, "fact_log") == 2 * table.num_rows + 1
    assert _count(pipeline, "dead_letter") == 0


def test_the_decoder_is_ready_when_the_processor_starts():
    """On a fresh machine numba compiles the scanner for seconds: at start, not while a first batch waits."""
    code = """
from logpipe.codec import flat_json
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.contract import Sinks
from logpipe.processing.processor import Processor
from logpipe.transport.channel import Channel

class Discard:
    name = "discard"

    def write(self, batch, token):
        pass

processor = Processor(Channel(1000), Sinks(Discard(), [Discard()]), ProcessorConfig())
before = len(flat_json._scan.signatures)
processor.start()
print(before, len(flat_json._scan.signatures))
processor.stop()
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["0", "1"]


def test_a_committer_thread_keeps_its_name_after_inserting(store):
    """chdb renames a thread that runs a query; the bench tells components apart by thread name, so a
    committer's own work (the Kafka one normalizes there) must not be counted as the engine's."""
    now = time.time()
    facts = normalize_ndjson(encode_ndjson(TrafficGenerator(seed=5).generate(100, now - 1, now)),
                             Provenance("test")).facts
    committer = Committer("logpipe-test-committer", lambda table: store.insert("fact_log", table, "named-1"))
    committer.start()
    committer.put(facts)
    committer.drain()
    name = Path(f"/proc/self/task/{committer._thread.native_id}/comm").read_text().strip()
    committer.close()
    committer.join(10)
    assert name == "lp:test-committ"


def test_a_batch_is_inserted_once_its_rows_reach_the_byte_bound(store_dir):
    """Rows of wide events are bounded by their bytes, not only by their count: with the row bound and
    the flush interval far away, the batch goes to ClickHouse as soon as its normalized rows reach
    ``insert_max_bytes``, holding exactly the envelopes taken until then."""
    settings = Settings(data_dir=store_dir, clickhouse_database=f"co_{uuid.uuid4().hex[:8]}", sim_enabled=False,
                        otlp_enabled=False, syslog_enabled=False, batch_max_rows=10_000_000,
                        flush_interval_s=3600, insert_max_bytes=1 << 20)
    pipeline = Pipeline(settings)
    pipeline.start()
    try:
        generator, now = TrafficGenerator(seed=7), time.time()
        tables = [generator.generate(1500, now - 1, now) for _ in range(12)]
        payloads = [encode_ndjson(table) for table in tables]
        sizes = [normalize_ndjson(p, Provenance("simulator")).facts.nbytes for p in payloads]
        reached = next(i for i in range(len(sizes)) if sum(sizes[:i + 1]) >= settings.insert_max_bytes) + 1
        assert 1 < reached < len(payloads)
        # one envelope past the bound: it opens the next batch
        for payload, table in zip(payloads[:reached + 1], tables, strict=False):
            pipeline.engine.channel.put(Envelope(payload, table.num_rows, Provenance("simulator")))
            deadline = time.monotonic() + 30
            while not pipeline.engine.channel.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
        deadline = time.monotonic() + 60
        while _count(pipeline, "fact_log") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more may follow: the next batch is below the bound
        assert _count(pipeline, "fact_log") == sum(table.num_rows for table in tables[:reached])
        assert pipeline.processor.pending.rows == tables[reached].num_rows
    finally:
        pipeline.stop()
