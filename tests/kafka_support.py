"""Kafka test support: isolated topics and groups per test, traffic, and the group's progress."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

from logpipe.child_process import stop_with_parent
from logpipe.simulator.generator import TrafficGenerator
from logpipe.transport.kafka import KafkaConfig, KafkaProducerTransport
from logpipe.transport.topics import dlq_topic, topic_names
from tests.conftest import LOGPIPE, bearer, free_port, role_tokens


def kafka_test_config(bootstrap: str) -> tuple[KafkaConfig, dict[str, str]]:
    prefix = f"t{uuid.uuid4().hex[:6]}."
    group = f"g-{uuid.uuid4().hex[:6]}"
    config = KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix, partitions=3, group_id=group)
    env = {"LOGPIPE_KAFKA_BOOTSTRAP": bootstrap, "LOGPIPE_KAFKA_TOPIC_PREFIX": prefix,
           "LOGPIPE_KAFKA_GROUP_ID": group, "LOGPIPE_FLUSH_INTERVAL_S": "0.3", "LOGPIPE_BATCH_MAX_ROWS": "20000",
           **{f"LOGPIPE_{role.upper()}_TOKEN": token for role, token in role_tokens().items()}}
    return config, env


def headers(env: dict[str, str], role: str = "read") -> dict[str, str]:
    """What a client of the processes started with ``env`` sends for ``role``."""
    return bearer(env[f"LOGPIPE_{role.upper()}_TOKEN"])


def produce_traffic(config: KafkaConfig, n: int, seed: int) -> pa.Table:
    producer = KafkaProducerTransport(config)
    now = time.time()
    table = TrafficGenerator(seed=seed, id_prefix=f"k{seed}-").generate(n, now - 30, now)
    for start in range(0, table.num_rows, 50_000):
        producer.send(table.slice(start, 50_000)).result(60)
    producer.close()
    return table


def start_processor(env: dict[str, str], data_dir, *args: str) -> subprocess.Popen:
    env = {"LOGPIPE_PROCESS_PORT": str(free_port()), **os.environ, **env, "LOGPIPE_DATA_DIR": str(data_dir)}
    return subprocess.Popen([*LOGPIPE, "process", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(data_dir / "process.log", "ab"), preexec_fn=stop_with_parent)


def caught_up(config: KafkaConfig) -> bool:
    return not lagging(config)


def _log_partitions(consumer: Consumer, config: KafkaConfig) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=5)
    return [TopicPartition(t, p) for t in topic_names(config.topic_prefix)
            if t in metadata.topics and t != dlq_topic(config.topic_prefix) for p in metadata.topics[t].partitions]


def committed_total(config: KafkaConfig) -> int:
    """The group's committed offsets summed over the log partitions: grows as the processor commits."""
    consumer = Consumer({"bootstrap.servers": config.bootstrap, "group.id": config.group_id})
    try:
        return sum(max(0, tp.offset) for tp in consumer.committed(_log_partitions(consumer, config), timeout=10))
    finally:
        consumer.close()


def lagging(config: KafkaConfig) -> dict[tuple[str, int], tuple[int, int]]:
    """Partitions whose committed offset is behind the end: (topic, partition) -> (committed, end)."""
    consumer = Consumer({"bootstrap.servers": config.bootstrap, "group.id": config.group_id})
    try:
        parts = _log_partitions(consumer, config)
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(parts, timeout=10)}
        behind = {}
        for tp in parts:
            high = consumer.get_watermark_offsets(tp, timeout=10)[1]
            if high > 0 and committed[(tp.topic, tp.partition)] < high:
                behind[(tp.topic, tp.partition)] = (committed[(tp.topic, tp.partition)], high)
        return behind
    finally:
        consumer.close()


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False
