"""The read-only view of Kafka on a real broker (tansu): exact offsets and lag per partition, the
newest dead-letter messages with their headers, and looking never moves the processor's group."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from logpipe.transport.kafka import ensure_topics
from logpipe.transport.kafka_overview import KafkaOverview, KafkaUnavailable
from logpipe.transport.topics import dlq_topic, topic_names
from tests.kafka_support import kafka_test_config


def _produce(bootstrap: str, topic: str, partition: int, n: int) -> None:
    """One record a batch: tansu's memory storage reports a partition's end as its last batch's first
    offset + 1 (Apache Kafka: its last offset + 1), so only then are the two the same."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        producer.produce(topic, f'{{"n": {i}}}'.encode(), partition=partition)
        assert producer.flush(30) == 0


def test_offsets_and_the_groups_lag_per_partition_are_exact_and_reading_commits_nothing(kafka_broker):
    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    auth = config.topic_prefix + "auth"
    for partition, n in ((0, 7), (1, 3)):
        _produce(kafka_broker, auth, partition, n)
    group = Consumer({"bootstrap.servers": kafka_broker, "group.id": config.group_id, "enable.auto.commit": False})
    group.commit(offsets=[TopicPartition(auth, 0, 5)], asynchronous=False)  # 2 of partition 0 left
    group.close()

    overview = KafkaOverview(config)
    for _ in range(2):  # a second look sees the same: the first committed nothing
        found = {t["topic"]: t for t in overview.topics()["topics"]}
        partitions = {p["partition"]: p for p in found[auth]["partitions"]}
        assert [(p["end"], p["committed"], p["lag"]) for _, p in sorted(partitions.items())] == [
            (7, 5, 2), (3, None, 3), (0, None, 0)]
        assert (found[auth]["end"], found[auth]["messages"], found[auth]["lag"]) == (10, 10, 5)
        assert found[dlq_topic(config.topic_prefix)]["lag"] is None  # no group consumes the dead letters
        assert sorted(found) == sorted(topic_names(config.topic_prefix))


def test_the_newest_dead_letters_come_newest_first_with_their_headers(kafka_broker):
    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    dlq = dlq_topic(config.topic_prefix)
    overview = KafkaOverview(config)
    assert overview.newest_dead_letters(5) == []
    producer = Producer({"bootstrap.servers": kafka_broker})
    base = int(time.time() * 1000) - 60_000
    for i in range(12):
        producer.produce(dlq, f'{{"bad": {i}}}'.encode(), partition=i % 3, timestamp=base + i * 1000,
                         headers=[("error", f"reason {i}".encode()), ("origin_topic", b"logs.auth"),
                                  ("origin_partition", b"1"), ("origin_offset", str(100 + i).encode())])
        assert producer.flush(30) == 0  # one record a batch (see _produce)
    producer.produce(dlq, b"x" * (70 << 10), partition=0, timestamp=base - 5000)  # old, and too long to show whole
    assert producer.flush(30) == 0
    newest = overview.newest_dead_letters(5)
    assert [m["value"] for m in newest] == [f'{{"bad": {i}}}' for i in (11, 10, 9, 8, 7)]
    assert newest[0]["headers"] == {"error": "reason 11", "origin_topic": "logs.auth", "origin_partition": "1",
                                    "origin_offset": "111"}
    assert (newest[0]["partition"], newest[0]["timestamp_ms"]) == (2, base + 11_000)
    every = overview.newest_dead_letters(50)
    assert len(every) == 13 and every[-1]["truncated"] and len(every[-1]["value"]) == 64 << 10


def test_brokers_that_do_not_answer_are_a_clear_error():
    config, _ = kafka_test_config("127.0.0.1:9")  # nothing listens on the discard port
    try:
        KafkaOverview(config).topics()
    except KafkaUnavailable:
        return
    raise AssertionError("no error")
