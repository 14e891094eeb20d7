"""The Spark engine (pyspark local[2], the python Kafka source) against tansu and the embedded store.

One SparkSession serves the module; the crash test runs `logpipe spark` as its own driver process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from logpipe.child_process import stop_with_parent
from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import Provenance
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.kafka_processor import KafkaProcessor
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.processing.spark.config import SparkConfig
from logpipe.processing.spark.job import ForeachBatchSink, spark_session, start_query
from logpipe.processing.spark.listener import ProgressListener
from logpipe.processing.spark.source import ARROW_SCHEMA, KafkaStreamReader, OffsetRange, read_ranges
from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.kafka import KafkaProducerTransport, ensure_topics
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.store import Store
from tests.conftest import LOGPIPE, free_port
from tests.kafka_support import caught_up, headers, kafka_test_config, produce_traffic, wait_for
from tests.warehouse.test_dimensions import SERVICE_ROWS, dimension_pairs

CORPUS = Path(__file__).with_name("golden_corpus.ndjson")
UNDECODABLE = [b"\xff\xfe not utf-8", b""]


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    session = spark_session(SparkConfig(checkpoint_dir=tmp_path_factory.mktemp("unused"), ui=False))
    session.streams.addListener(ProgressListener())
    yield session
    session.stop()


def golden_corpus() -> list[bytes]:
    now = datetime.now(UTC)
    seconds = now.timestamp()
    text = CORPUS.read_text()
    for name, value in {"$NOW_ISO": now.isoformat(), "$NOW_NAIVE": now.replace(tzinfo=None).isoformat(),
                        "$NOW_NS": str(int(seconds * 1e9)), "$NOW_US": str(int(seconds * 1e6)),
                        "$NOW_MS": str(int(seconds * 1e3)), "$NOW_S": f"{seconds:.3f}"}.items():
        text = text.replace(name, value)
    return [line.encode() for line in text.splitlines()] + UNDECODABLE


def _spark_config(tmp_path: Path, **overrides) -> SparkConfig:
    return SparkConfig(checkpoint_dir=tmp_path / "checkpoint", ui=False, trigger_s=0.5, **overrides)


def _second_store(store: Store) -> Store:
    other = Store(WarehouseConfig(data_dir=store.config.data_dir, database=f"t_{uuid.uuid4().hex[:10]}"))
    other.apply_schema()
    return other


def _facts(store: Store) -> list[tuple]:
    columns = [c for c in store.query_rows(f"SELECT * FROM {store.database}.fact_log LIMIT 0")[0] if c != "ingest_ts"]
    return store.query_rows(f"SELECT {', '.join(columns)} FROM {store.database}.fact_log "
                            "ORDER BY topic, partition, offset")[1]


def _dead_letters(store: Store) -> list[tuple]:
    return store.query_rows(f"SELECT topic, partition, offset, reason, raw FROM {store.database}.dead_letter "
                            "ORDER BY topic, partition, offset")[1]


def _comparable(rows: list[tuple], columns: list[str]) -> list[tuple]:
    """Fact rows without what differs by engine: provenance, and the ids generated for events sent
    without one (named by their Kafka offset, or random)."""
    skip = {columns.index(c) for c in ("source", "topic", "partition", "offset")}
    event_id = columns.index("event_id")
    kept = [tuple(v if not (i == event_id and not str(v).startswith("g-")) else "(generated)"
                  for i, v in enumerate(row) if i not in skip) for row in rows]
    return sorted(kept, key=repr)


def _in(store: Store, sql: str) -> list[tuple]:
    return store.query_rows(sql.replace("{db}", store.database))[1]


def _refused_reason(reason: str, database: str) -> str:
    return reason.replace(database, "<db>").split(" (")[0] if "rejected by the store" in reason else reason


def _drain_with_the_kafka_processor(config, store: Store) -> None:
    """The embedded Kafka processor, run until the group has consumed everything produced."""
    embedded = KafkaProcessor(config, store, fact_sink(store), dead_letter_sink(store),
                              ProcessorConfig(batch_max_rows=10_000, flush_interval_s=0.3))
    thread = threading.Thread(target=embedded.run)
    thread.start()
    try:
        assert wait_for(lambda: caught_up(config), 120)
    finally:
        embedded.stop()
        thread.join(60)


def test_the_driver_jvm_gets_the_configured_heap(spark):
    """A micro-batch of the default 500,000 offsets ran the 1g default heap out of memory."""
    heap = spark._jvm.java.lang.Runtime.getRuntime().maxMemory()
    assert SparkConfig(checkpoint_dir=Path("unused")).driver_memory == "2g"
    assert heap > 1.5 * 2**30


def test_the_python_source_reads_each_range_exactly_with_its_keys_headers_and_timestamps(kafka_broker):
    """Ranges that end inside their partitions, over two topics: each message of a range once, in
    order, with its fields, and none of the messages after a range's end."""
    from confluent_kafka import Producer

    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    auth, order = f"{config.topic_prefix}auth", f"{config.topic_prefix}order"
    producer = Producer({"bootstrap.servers": kafka_broker})
    for topic in (auth, order):
        for partition in range(2):
            for i in range(300):
                producer.produce(topic, value=f"{topic}/{partition}/{i}".encode(), key=f"k{i}".encode(),
                                 partition=partition, timestamp=1_700_000_000_000 + i,
                                 headers=[("logpipe-sender", b"svc")] if i % 2 else None)
    producer.flush(30)
    ranges = (OffsetRange(auth, 0, 10, 250), OffsetRange(order, 1, 0, 300), OffsetRange(auth, 1, 299, 300),
              OffsetRange(order, 0, 100, 101))
    rows = [row for batch in read_ranges({"bootstrap.servers": kafka_broker}, ranges)
            for row in batch.to_pylist()]
    expected = [(r.topic, r.partition, i) for r in ranges for i in range(r.start, r.end)]
    assert [(row["topic"], row["partition"], row["offset"]) for row in rows] == expected
    for row in rows:
        i = row["offset"]
        assert row["value"] == f"{row['topic']}/{row['partition']}/{i}".encode() and row["key"] == f"k{i}".encode()
        assert row["timestamp"] == datetime.fromtimestamp(1_700_000_000 + i / 1000, UTC)
        assert row["timestampType"] == 0  # create time, as Spark's Kafka source says
        assert row["headers"] == ([{"key": "logpipe-sender", "value": b"svc"}] if i % 2 else None)


def test_the_planned_end_of_each_partition_follows_every_append(kafka_broker):
    """The planner's end offsets are exact after each append (the broker reports the newest record
    batch's base offset; the real end is probed, and kept only while that report stands still)."""
    from confluent_kafka import Producer

    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    topic = f"{config.topic_prefix}auth"
    reader = KafkaStreamReader({"kafka.bootstrap.servers": kafka_broker, "subscribePattern": f"{topic}"})
    producer = Producer({"bootstrap.servers": kafka_broker, "linger.ms": 50})
    sent = 0
    for count in (500, 0, 1, 700, 0):
        for _ in range(count):
            producer.produce(topic, value=b"x", partition=0)
        producer.flush(30)
        sent += count
        for _ in range(2):  # the second call answers from what the first one probed
            assert reader.latestOffset(reader.initialOffset(), None)[topic]["0"] == sent
    reader.stop()


class _DriverKilledAtChunk(ForeachBatchSink):
    """A sink whose driver dies as it writes one chunk: what a replay finds after a crash mid-batch."""

    def __init__(self, store: Store, chunk: int, **kwargs):
        super().__init__(store, **kwargs)
        self.chunk = chunk

    def _write(self, facts, dead, token, give_up_at):
        if token.endswith(f":{self.chunk}"):
            raise RuntimeError("driver killed")
        super()._write(facts, dead, token, give_up_at)


def test_a_micro_batch_cut_short_in_its_chunks_and_replayed_in_another_order_is_stored_once(spark, store):
    """The sink cuts a micro-batch into chunks in offset order and writes one while it normalizes the
    next. A crash part way leaves the chunks before it stored and none after; Spark's replay of the
    batch, its rows in another order, makes the same chunks under the same tokens, so every row is
    stored once."""
    now = time.time()
    lines = encode_ndjson(TrafficGenerator(seed=5, id_prefix="chunks-").generate(2_600, now - 5, now)).splitlines()
    count = len(lines)
    raw = pa.table({"key": [None] * count, "value": lines, "topic": ["logs.auth"] * count,
                    "partition": [i % 3 for i in range(count)], "offset": [i // 3 for i in range(count)],
                    "timestamp": [None] * count, "timestampType": [0] * count, "headers": [None] * count},
                   schema=ARROW_SCHEMA)

    def stored() -> tuple[int, int]:
        return _in(store, "SELECT count(), uniqExact(partition, offset) FROM {db}.fact_log")[0]

    crashing = _DriverKilledAtChunk(store, 3, chunk_rows=500)
    crashing.bind("chunk-test")
    with pytest.raises(RuntimeError, match="driver killed"):
        crashing(spark.createDataFrame(raw), 7)
    assert count > 5 * 500 and stored() == (1_500, 1_500)  # chunks 0-2, nothing after the one that failed

    replay = ForeachBatchSink(store, chunk_rows=500)
    replay.bind("chunk-test")
    replay(spark.createDataFrame(raw.take(list(range(count - 1, -1, -1)))), 7)
    assert stored() == (count, count)
    replay(spark.createDataFrame(raw), 7)
    assert stored() == (count, count)


def test_all_three_engines_give_the_same_rows_and_dead_letters_for_the_golden_corpus(spark, kafka_broker, store,
                                                                                     tmp_path):
    """The Kafka processor, Spark and the embedded processor read the same corpus (valid, edge and
    malformed events, and one the store refuses for good) into the same rows and dead letters."""
    from logpipe.processing.contract import Sinks
    from logpipe.processing.processor import Processor
    from logpipe.transport.channel import Channel, Envelope
    from tests.processing.test_contract import POISON, refuse_poison

    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    refuse_poison(store)
    corpus = golden_corpus()
    producer = KafkaProducerTransport(config)
    topic = config.topic_prefix + "order"
    producer.send_raw(corpus, [topic] * len(corpus), [None] * len(corpus)).result(30)
    producer.close()
    after = produce_traffic(config, 3_000, seed=41)  # the stream goes on after the malformed ones

    _drain_with_the_kafka_processor(config, store)

    spark_store = _second_store(store)
    refuse_poison(spark_store)
    query = start_query(spark, spark_store, config, _spark_config(tmp_path), "python")
    query.processAllAvailable()
    query.stop()

    bad_lines = sum(1 for line in corpus if b"bad-" in line or not line.startswith(b'{"') or line == b"{}")
    refused = sum(1 for line in corpus if POISON.encode() in line)
    assert refused == 1
    embedded_facts, spark_facts = _facts(store), _facts(spark_store)
    assert len(embedded_facts) == len(corpus) - bad_lines - refused + after.num_rows
    assert spark_facts == embedded_facts
    embedded_dead = _dead_letters(store)
    assert len(embedded_dead) == bad_lines + refused
    spark_dead = _dead_letters(spark_store)
    assert [d[:3] for d in spark_dead] == [d[:3] for d in embedded_dead]
    assert [_refused_reason(d[3], spark_store.database) for d in spark_dead] == [
        _refused_reason(d[3], store.database) for d in embedded_dead]
    assert sum("rejected by the store: " in d[3] and "VIOLATED_CONSTRAINT" in d[3] for d in embedded_dead) == 1

    # the in-process engine: the same corpus as one HTTP payload, through the channel
    http_store = _second_store(store)
    refuse_poison(http_store)
    channel = Channel(100_000)
    processor = Processor(channel, Sinks(fact_sink(http_store), [dead_letter_sink(http_store)]),
                          ProcessorConfig(flush_interval_s=0.2))
    processor.start()
    from concurrent.futures import Future

    answer: Future = Future()
    channel.put(Envelope(b"\n".join(corpus) + b"\n", len(corpus), Provenance("http"), answer))
    result = answer.result(60)
    processor.stop()
    # an empty value is a record of its own in Kafka, and a blank line (no record) in NDJSON
    assert (result.accepted, result.rejected) == (len(corpus) - bad_lines - refused, bad_lines - 1 + refused)
    columns = [c for c in http_store.query_rows(f"SELECT * FROM {http_store.database}.fact_log LIMIT 0")[0]
               if c != "ingest_ts"]
    corpus_facts = [row for row in embedded_facts if not str(row[columns.index("event_id")]).startswith("k41-")]
    assert _comparable(_facts(http_store), columns) == _comparable(corpus_facts, columns)
    http_reasons = [_refused_reason(r, http_store.database) for (r,) in http_store.query_rows(
        f"SELECT reason FROM {http_store.database}.dead_letter")[1]]
    kafka_reasons = [_refused_reason(d[3], store.database) for d in embedded_dead]
    assert len(http_reasons) == len(kafka_reasons) - 1
    assert set(http_reasons) <= set(kafka_reasons) and sum("rejected by the store" in r for r in http_reasons) == 1
    ids = {row[0] for row in embedded_facts}
    assert {"g-01", "g-20", f"{topic}:"} - ids == {f"{topic}:"}  # ids were kept; missing ones named by offset
    # the dimensions: the same rows from Spark as from the Kafka processor, and each store's are its facts'
    for dimension, from_facts in dimension_pairs():
        kafka_rows = _in(store, dimension)
        assert kafka_rows and _in(spark_store, dimension) == kafka_rows
        for each in (store, spark_store, http_store):
            assert _in(each, dimension) == _in(each, from_facts)
    assert _in(http_store, SERVICE_ROWS) != []
    assert sum(1 for i in ids if i.startswith(f"{topic}:")) == 2


def test_spark_reads_the_sender_source_and_refusal_headers_as_the_kafka_processor_does(spark, kafka_broker, store,
                                                                                      tmp_path):
    """A source's rows through Kafka carry their source (logpipe-source), a named token's name
    (logpipe-sender) and the source's reason for what it could not read (logpipe-refused): both
    Kafka engines store them alike."""
    import orjson

    from logpipe.transport.topics import REFUSED_HEADER, SENDER_HEADER, SOURCE_HEADER

    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    now = time.time()
    system = config.topic_prefix + "system"
    values = [orjson.dumps({"event_id": f"h-{i}", "ts": now, "service": "kernel", "kind": "system"}) for i in range(3)]
    values.append(b"not syslog at all")
    reason = "syslog: not a syslog message (no <PRI> at its start)"
    named = [(SOURCE_HEADER, b"syslog"), (SENDER_HEADER, b"edge")]
    producer = KafkaProducerTransport(config)
    producer.send_raw(values, [system] * 3 + [config.topic_prefix + "other"], [None] * 4,
                      [named, named, [(SOURCE_HEADER, b"syslog")], [*named, (REFUSED_HEADER, reason.encode())]]
                      ).result(30)
    plain = orjson.dumps({"event_id": "h-plain", "ts": now, "service": "auth"})
    producer.send_raw([plain], [system], [None]).result(30)
    producer.close()

    _drain_with_the_kafka_processor(config, store)
    spark_store = _second_store(store)
    query = start_query(spark, spark_store, config, _spark_config(tmp_path), "python")
    query.processAllAvailable()
    query.stop()

    def provenance(target: Store) -> list[tuple]:
        return target.query_rows(f"SELECT event_id, source, sender FROM {target.database}.fact_log "
                                 "ORDER BY event_id")[1]

    def refused(target: Store) -> list[tuple]:
        return target.query_rows(f"SELECT source, reason, raw FROM {target.database}.dead_letter")[1]

    expected = [("h-0", "syslog", "edge"), ("h-1", "syslog", "edge"), ("h-2", "syslog", ""),
                ("h-plain", "kafka", "")]
    assert provenance(store) == expected
    assert provenance(spark_store) == expected
    assert refused(store) == refused(spark_store) == [("syslog", reason, "not syslog at all")]


def test_stopping_the_query_mid_stream_and_restarting_loses_and_doubles_nothing(spark, kafka_broker, store,
                                                                                 tmp_path):
    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    produced = produce_traffic(config, 40_000, seed=42).num_rows
    spark_config = _spark_config(tmp_path, max_offsets_per_trigger=8_000)
    query = start_query(spark, store, config, spark_config, "python")
    assert wait_for(lambda: store.scalar(f"SELECT count() FROM {store.database}.fact_log") > 0, 120)
    query.stop()
    stopped_at = store.scalar(f"SELECT count() FROM {store.database}.fact_log")
    assert 0 < stopped_at < produced

    restarted = start_query(spark, store, config, spark_config, "python")
    assert restarted.id == query.id  # the same query, resumed from its checkpoint
    restarted.processAllAvailable()
    restarted.stop()
    assert store.query_rows(f"SELECT count(), uniqExact(event_id) FROM {store.database}.fact_log")[1] == [
        (produced, produced)]


def test_killing_the_driver_mid_stream_and_restarting_loses_and_doubles_nothing(kafka_broker, tmp_path):
    config, env = kafka_test_config(kafka_broker)
    ensure_topics(config)
    produced = produce_traffic(config, 60_000, seed=43).num_rows
    port = free_port()
    env = {**os.environ, **env, "LOGPIPE_DATA_DIR": str(tmp_path), "LOGPIPE_PROCESS_PORT": str(port),
           "LOGPIPE_SPARK_MAX_OFFSETS_PER_TRIGGER": "6000", "LOGPIPE_SPARK_TRIGGER_S": "0.5", "LOGPIPE_DIM_SYNC_S": "1"}
    log = open(tmp_path / "spark.log", "ab")  # noqa: SIM115

    def count() -> tuple[int, int]:
        try:
            response = httpx.post(f"http://127.0.0.1:{port}/v1/query", timeout=10, headers=headers(env),
                                  content=b"SELECT count(), uniqExact(event_id) FROM analytics.fact_log")
            return tuple(response.json()["rows"][0]) if response.status_code == 200 else (0, 0)
        except httpx.HTTPError:
            return (0, 0)

    driver = subprocess.Popen([*LOGPIPE, "spark", "--source", "python"], env=env, stdout=log, stderr=log,
                              preexec_fn=stop_with_parent)
    try:
        assert wait_for(lambda: count()[0] > 0, 180), (tmp_path / "spark.log").read_text()[-3000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        time.sleep(2)  # the JVM exits when its Python driver is gone
        driver = subprocess.Popen([*LOGPIPE, "spark", "--source", "python"], env=env, stdout=log, stderr=log,
                                  preexec_fn=stop_with_parent)
        assert wait_for(lambda: count()[0] >= produced, 240), (count(), (tmp_path / "spark.log").read_text()[-3000:])
        assert count() == (produced, produced)
        def gauge(name: str) -> float:
            for line in httpx.get(f"http://127.0.0.1:{port}/metrics", headers=headers(env)).text.splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            raise AssertionError(f"{name} not exposed")

        assert gauge('logpipe_dimension_syncs_total{result="ok"}') > 0  # the driver syncs the dimensions
        for dimension, from_facts in dimension_pairs():  # and the kill lost or doubled none of them
            rows = [httpx.post(f"http://127.0.0.1:{port}/v1/query", timeout=30, headers=headers(env),
                               content=sql.replace("{db}", "analytics").encode()).json()["rows"]
                    for sql in (dimension, from_facts)]
            assert rows[0] and rows[0] == rows[1]
        assert gauge("logpipe_spark_processed_rows_per_second") > 0
        assert gauge("logpipe_spark_batch_seconds") > 0
        behind = gauge("logpipe_spark_offsets_behind_latest")
        assert wait_for(lambda: gauge("logpipe_spark_offsets_behind_latest") == 0, 60), behind
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(90) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        log.close()


def test_auto_picks_the_python_source_without_the_connector_jars_and_kafka_says_why(spark):
    from logpipe.processing.spark.job import resolve_source

    assert resolve_source(spark, "auto") == "python"
    with pytest.raises(RuntimeError, match="spark-sql-kafka-0-10"):
        resolve_source(spark, "kafka")


def test_a_query_that_dies_is_reported_with_its_exception(spark, kafka_broker, tmp_path):
    from pyspark.errors import StreamingQueryException

    from logpipe import metrics
    from logpipe.warehouse.remote import RemoteStore

    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    produce_traffic(config, 100, seed=44)
    listener = ProgressListener()
    spark.streams.addListener(listener)
    failures_before = metrics.SPARK_QUERY_FAILURES._value.get()
    gone = RemoteStore(WarehouseConfig(url=f"logpipe+http://127.0.0.1:{free_port()}"))
    query = start_query(spark, gone, config, _spark_config(tmp_path, write_give_up_s=2), "python")
    with pytest.raises(StreamingQueryException, match="unreachable"):
        query.awaitTermination(120)
    assert wait_for(lambda: listener.failure is not None, 30)
    assert "unreachable" in listener.failure
    assert metrics.SPARK_QUERY_FAILURES._value.get() > failures_before
    spark.streams.removeListener(listener)
