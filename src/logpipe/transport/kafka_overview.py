"""What Kafka holds for logpipe, read-only, as Kafka UI shows it: the log topics with their partitions,
offsets and the processor group's lag per partition, and the newest messages of the dead-letter topic.

Nothing here joins a group or commits: offsets are read with ``committed``, and the dead-letter topic
is read by assigning partitions, so looking never moves the processor.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from logpipe.transport.kafka import KafkaConfig
from logpipe.transport.topics import dlq_topic, topic_names

MAX_MESSAGE_CHARS = 64 << 10  # of one dead letter's value on the page; the rest is cut, and said to be
READ_TIMEOUT_S = 5.0


class KafkaUnavailable(Exception):
    """The brokers did not answer in time."""


class KafkaOverview:
    """One read-only consumer in the processor's group (to read its committed offsets), used by one
    request at a time."""

    def __init__(self, config: KafkaConfig):
        self.config = config
        self._lock = threading.Lock()

    def _consumer(self, group_id: str) -> Consumer:
        return Consumer(self.config.client(**{"group.id": group_id, "enable.auto.commit": False,
                                              "enable.partition.eof": True, "auto.offset.reset": "earliest",
                                              "socket.timeout.ms": int(READ_TIMEOUT_S * 1000)}))

    def topics(self) -> dict[str, Any]:
        """Every logpipe topic with its partitions: earliest and end offsets, the group's committed
        offset and lag (none for the dead-letter topic, which no group consumes)."""
        with self._lock:
            consumer = self._consumer(self.config.group_id)
            try:
                metadata = consumer.list_topics(timeout=READ_TIMEOUT_S)
                dlq = dlq_topic(self.config.topic_prefix)
                topics = []
                for name in topic_names(self.config.topic_prefix):
                    if name in metadata.topics:
                        rows = _partitions(consumer, name, metadata.topics[name].partitions, name != dlq)
                        topics.append({"topic": name, "partitions": rows, "end": sum(r["end"] for r in rows),
                                       "messages": sum(r["messages"] for r in rows),
                                       "lag": sum(r["lag"] for r in rows) if name != dlq else None})
                return {"bootstrap": self.config.bootstrap, "group": self.config.group_id,
                        "brokers": len(metadata.brokers), "topics": topics}
            except KafkaException as exc:
                raise KafkaUnavailable(str(exc)) from None
            finally:
                consumer.close()

    def newest_dead_letters(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` messages of the dead-letter topic, newest first, with their headers."""
        topic = dlq_topic(self.config.topic_prefix)
        with self._lock:
            # a group of its own that never commits: the assignment below does not join it
            consumer = self._consumer(f"logpipe-kafka-page-{uuid.uuid4().hex[:8]}")
            try:
                metadata = consumer.list_topics(topic, timeout=READ_TIMEOUT_S)
                if topic not in metadata.topics or metadata.topics[topic].error is not None:
                    return []
                assigned, remaining = [], set()
                for p in metadata.topics[topic].partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=READ_TIMEOUT_S)
                    if high > low:
                        assigned.append(TopicPartition(topic, p, max(low, high - limit)))
                        remaining.add(p)
                if not assigned:
                    return []
                consumer.assign(assigned)
                found = []
                deadline_polls = int(READ_TIMEOUT_S / 0.2)
                while remaining and deadline_polls > 0:
                    deadline_polls -= 1
                    for message in consumer.consume(500, timeout=0.2):
                        if message.error() is not None:
                            remaining.discard(message.partition())  # end of partition, or unreadable
                            continue
                        found.append(_message(message))
                found.sort(key=lambda m: (m["timestamp_ms"], m["partition"], m["offset"]), reverse=True)
                return found[:limit]
            except KafkaException as exc:
                raise KafkaUnavailable(str(exc)) from None
            finally:
                consumer.close()


def _partitions(consumer: Consumer, topic: str, partitions: dict[int, Any], consumed: bool) -> list[dict[str, Any]]:
    ids = sorted(partitions)
    committed = ({tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in ids],
                                                                         timeout=READ_TIMEOUT_S)} if consumed else {})
    rows = []
    for p in ids:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=READ_TIMEOUT_S)
        position = committed.get(p, OFFSET_INVALID)
        rows.append({"partition": p, "leader": partitions[p].leader, "earliest": low, "end": high,
                     "messages": high - low, "committed": position if position >= 0 else None,
                     "lag": max(0, high - (position if position >= 0 else low)) if consumed else None})
    return rows


def _message(message: Any) -> dict[str, Any]:
    value = (message.value() or b"").decode("utf-8", "replace")
    headers = {key: (v or b"").decode("utf-8", "replace") for key, v in (message.headers() or [])}
    return {"partition": message.partition(), "offset": message.offset(), "timestamp_ms": message.timestamp()[1],
            "key": (message.key() or b"").decode("utf-8", "replace"), "headers": headers,
            "value": value[:MAX_MESSAGE_CHARS], "truncated": len(value) > MAX_MESSAGE_CHARS}
