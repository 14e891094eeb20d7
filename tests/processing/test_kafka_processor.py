"""The Kafka processor's offsets (what the group shows as done after a rebalance) and batches."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, TopicPartition

from logpipe.processing.committer import Committer
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.kafka_processor import KafkaCheckpoint, KafkaProcessor, Polled
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.transport.kafka import consumer_settings, ensure_topics
from logpipe.transport.topics import subscription_pattern
from tests.kafka_support import kafka_test_config


def _member(bootstrap: str, group_id: str, prefix: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, **consumer_settings(group_id)})
    consumer.subscribe([subscription_pattern(prefix)])
    return consumer


def _poll_until(members: list[Consumer], settled, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for member in members:
            member.poll(0.1)
        if settled():
            return True
    return False


def test_a_refused_commit_is_made_again_only_for_partitions_the_member_keeps(kafka_broker):
    """A commit refused during a rebalance left the group's lag standing for a partition the member
    kept, until new messages came (nothing would ever commit those rows); a partition that moved
    belongs to its new owner, whose offsets must not be overwritten with ours."""
    config, _ = kafka_test_config(kafka_broker)
    ensure_topics(config)
    first = _member(kafka_broker, config.group_id, config.topic_prefix)
    second = None
    try:
        assert _poll_until([first], lambda: len(first.assignment()) > 0)
        second = _member(kafka_broker, config.group_id, config.topic_prefix)
        total = len(first.assignment())
        assert _poll_until([first, second], lambda: first.assignment() and second.assignment()
                           and len(first.assignment()) + len(second.assignment()) == total)
        kept, moved = first.assignment()[0], second.assignment()[0]
        checkpoint = KafkaCheckpoint(first)
        checkpoint.commit_later([TopicPartition(kept.topic, kept.partition, 5),
                                 TopicPartition(moved.topic, moved.partition, 7)])
        checkpoint.recommit_refused(every_s=0)
        committed = {(tp.topic, tp.partition): tp.offset for tp in first.committed(
            [TopicPartition(kept.topic, kept.partition), TopicPartition(moved.topic, moved.partition)], timeout=10)}
        assert committed[(kept.topic, kept.partition)] == 5
        assert committed[(moved.topic, moved.partition)] < 0  # nothing committed for the other member's
        assert checkpoint.refused == {}
    finally:
        first.close()
        if second is not None:
            second.close()


def test_while_a_batch_is_written_the_next_grows_until_full_then_goes_at_once(kafka_broker, store):
    """Each insert costs the store a part per table and view whatever its size, so under load the
    batch polled while the committer writes waits for it and takes everything that came meanwhile;
    only a full batch (rows or bytes) is handed over early, and an idle committer gets a batch on time."""
    config, _ = kafka_test_config(kafka_broker)
    processor = KafkaProcessor(config, store, fact_sink(store), dead_letter_sink(store),
                               ProcessorConfig(batch_max_rows=100, batch_max_bytes=10_000, flush_interval_s=0.01))
    release = threading.Event()
    processor._committer = Committer("test-committer", lambda _: release.wait(30)).start()

    def polled(count: int, size: int) -> Polled:
        return Polled(values=[b"x" * size] * count, topics=["t"] * count, partitions=[0] * count,
                      offsets=list(range(count)), size=count * size)

    try:
        processor.opened_at = time.monotonic() - 1  # far older than the flush interval
        processor._committer.put(polled(1, 1))  # being written
        processor.polled = polled(50, 10)
        assert processor._committer.busy
        assert not processor._due(caught_up=True)
        processor.polled = polled(100, 10)  # full by rows
        assert processor._due(caught_up=False)
        processor.polled = polled(50, 200)  # full by bytes
        assert processor._due(caught_up=False)
        release.set()
        processor._committer.drain()
        processor.polled = polled(50, 10)
        assert not processor._committer.busy
        assert processor._due(caught_up=True)
    finally:
        release.set()
        processor._committer.close()
        processor.consumer.close()
        processor.dlq.close()
