"""``logpipe_kafka``: a Spark 4 streaming Python data source that reads Kafka through confluent-kafka.

It stands in for Spark's own Kafka connector where its jars cannot be fetched, with the same output
columns (key, value, topic, partition, offset, timestamp, timestampType). The driver plans per
topic-partition offset ranges, which Spark stores in its checkpoint; executors read each range.
Offsets are a dict ``{topic: {partition: next_offset}}``; topics matching the pattern that appear
later are read from their start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.types import StructType

try:  # Spark 4.2+: admission control
    from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadLimit, ReadMaxRows
except ImportError:  # pragma: no cover - Spark 4.0/4.1
    ReadAllAvailable = ReadLimit = ReadMaxRows = None

SOURCE_NAME = "logpipe_kafka"
# Spark's Kafka source's columns, headers included (its includeHeaders option)
KAFKA_COLUMNS = ("key binary, value binary, topic string, partition int, offset long, "
                 "timestamp timestamp, timestampType int, headers array<struct<key: string, value: binary>>")
ARROW_SCHEMA = pa.schema([("key", pa.binary()), ("value", pa.binary()), ("topic", pa.string()),
                          ("partition", pa.int32()), ("offset", pa.int64()),
                          ("timestamp", pa.timestamp("us", "UTC")), ("timestampType", pa.int32()),
                          ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())])))])
READ_CHUNK = 20_000
Offsets = dict[str, dict[str, int]]


@dataclass(frozen=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class ReadTask(InputPartition):
    """One Spark task: several offset ranges read by one consumer (starting one per range costs more
    than reading it, for small ranges)."""

    ranges: tuple[OffsetRange, ...]


def _client_options(options: Mapping[str, str]) -> dict[str, Any]:
    """``kafka.bootstrap.servers`` and any other ``kafka.*`` option, as for Spark's Kafka source."""
    client = {k[len("kafka."):]: v for k, v in options.items() if k.startswith("kafka.")}
    if "bootstrap.servers" not in client:
        raise ValueError("option kafka.bootstrap.servers is required")
    return client


class KafkaStreamReader(DataSourceStreamReader):
    def __init__(self, options: Mapping[str, str]):
        self.client = _client_options(options)
        self.pattern = re.compile(options["subscribePattern"])
        self.exclude = re.compile(options["excludePattern"]) if options.get("excludePattern") else None
        self.starting = options.get("startingOffsets", "earliest")
        self.max_offsets = int(options["maxOffsetsPerTrigger"]) if options.get("maxOffsetsPerTrigger") else None
        self.fail_on_data_loss = options.get("failOnDataLoss", "true").lower() == "true"
        self.read_tasks = int(options.get("readTasks", "4"))
        self._consumer = None
        self._latest: Offsets | None = None
        self._last_end: Offsets | None = None
        self._confirmed: dict[tuple[str, str], tuple[int, int]] = {}  # (topic, partition): (reported, real end)

    # driver side ---------------------------------------------------------------------------------
    def _metadata_consumer(self):
        from confluent_kafka import Consumer

        if self._consumer is None:  # metadata, watermarks and the end probe: one planner client
            self._consumer = Consumer({**self.client, "group.id": "logpipe-spark-planner", "enable.auto.commit": False,
                                       "enable.partition.eof": True, "fetch.wait.max.ms": 10})
        return self._consumer

    def _watermarks(self) -> dict[str, dict[str, tuple[int, int]]]:
        from confluent_kafka import TopicPartition

        consumer = self._metadata_consumer()
        topics = consumer.list_topics(timeout=10).topics
        marks: dict[str, dict[str, tuple[int, int]]] = {}
        for name, topic in sorted(topics.items()):
            if not self.pattern.fullmatch(name) or (self.exclude and self.exclude.fullmatch(name)):
                continue
            marks[name] = {str(p): consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                           for p in sorted(topic.partitions)}
        return self._confirm_ends(marks)

    def _confirm_ends(self, marks: dict[str, dict[str, tuple[int, int]]]) -> dict[str, dict[str, tuple[int, int]]]:
        """Read each partition from its last offset to its end: some Kafka-protocol brokers (tansu)
        report the base offset of the newest record batch, not the offset after its last record. A
        partition whose reported end has not moved since the last probe has the same newest batch,
        so the end found then still holds and is not read again."""
        from confluent_kafka import KafkaError, TopicPartition

        probe, reported = [], {}
        for topic, parts in marks.items():
            for partition, (low, high) in parts.items():
                confirmed = self._confirmed.get((topic, partition))
                if confirmed is not None and confirmed[0] == high:
                    parts[partition] = (low, confirmed[1])
                elif high > low:
                    probe.append(TopicPartition(topic, int(partition), high - 1))
                    reported[(topic, partition)] = high
        if not probe:
            return marks
        consumer = self._metadata_consumer()
        try:
            consumer.assign(probe)
            pending = set(reported)
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for message in consumer.consume(num_messages=10_000, timeout=0.05):
                    key = (message.topic(), str(message.partition()))
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(key)
                        self._confirmed[key] = (reported[key], marks[key[0]][key[1]][1])
                    elif error is None:
                        low, high = marks[key[0]][key[1]]
                        marks[key[0]][key[1]] = (low, max(high, message.offset() + 1))
        finally:
            consumer.unassign()
        return marks

    def initialOffset(self) -> Offsets:
        position = 1 if self.starting == "latest" else 0
        return {t: {p: marks[position] for p, marks in parts.items()} for t, parts in self._watermarks().items()}

    def latestOffset(self, start: Offsets | None = None, limit: Any = None) -> Offsets:
        marks = self._watermarks()
        latest = self._latest = {t: {p: high for p, (_, high) in parts.items()} for t, parts in marks.items()}
        if start is None:  # Spark 4.0/4.1 call latestOffset() without the start: use the last end we gave
            if self._last_end is None:
                self._last_end = latest
                return latest
            start = self._last_end
        begin = {t: {p: start.get(t, {}).get(p, low) for p, (low, _) in parts.items()} for t, parts in marks.items()}
        max_rows = self.max_offsets
        if ReadMaxRows is not None and isinstance(limit, ReadMaxRows):
            max_rows = limit.max_rows
        elif ReadAllAvailable is not None and isinstance(limit, ReadAllAvailable):
            max_rows = None
        self._last_end = latest if max_rows is None else _rate_limited(begin, latest, max_rows)
        return self._last_end

    def getDefaultReadLimit(self):
        if ReadMaxRows is None or self.max_offsets is None:
            return ReadAllAvailable() if ReadAllAvailable is not None else None
        return ReadMaxRows(self.max_offsets)

    def reportLatestOffset(self) -> Offsets | None:
        return self._latest  # as seen by the latestOffset call of this trigger

    def partitions(self, start: Offsets, end: Offsets) -> list[ReadTask]:
        ranges = []
        for topic, parts in sorted(end.items()):
            for partition, until in sorted(parts.items(), key=lambda item: int(item[0])):
                begin = start.get(topic, {}).get(partition, 0)
                if until < begin and self.fail_on_data_loss:
                    raise RuntimeError(f"{topic}/{partition}: end offset {until} is before {begin}; data lost?")
                if until > begin:
                    ranges.append(OffsetRange(topic, int(partition), begin, until))
        return plan_tasks(ranges, self.read_tasks)

    def commit(self, end: Offsets) -> None:
        pass  # Spark's checkpoint holds the offsets; nothing to acknowledge to Kafka

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # executor side -------------------------------------------------------------------------------
    def read(self, partition: ReadTask) -> Iterator[pa.RecordBatch]:
        yield from read_ranges(self.client, partition.ranges)


def plan_tasks(ranges: list[OffsetRange], tasks: int) -> list[ReadTask]:
    """Deal the ranges, largest first, to the task with the fewest offsets so far."""
    buckets: list[list[OffsetRange]] = [[] for _ in range(max(1, min(tasks, len(ranges))))]
    sizes = [0] * len(buckets)
    for offset_range in sorted(ranges, key=lambda r: r.end - r.start, reverse=True):
        smallest = sizes.index(min(sizes))
        buckets[smallest].append(offset_range)
        sizes[smallest] += offset_range.end - offset_range.start
    return [ReadTask(tuple(bucket)) for bucket in buckets if bucket]


def _rate_limited(begin: Offsets, latest: Offsets, max_rows: int) -> Offsets:
    """Spread ``max_rows`` over the partitions in proportion to how far each is behind (as Spark does)."""
    behind = {(t, p): max(0, latest[t][p] - begin[t][p]) for t in latest for p in latest[t]}
    total = sum(behind.values())
    if total <= max_rows:
        return latest
    end = {t: dict(parts) for t, parts in begin.items()}
    for (topic, partition), lag in behind.items():
        end[topic][partition] = begin[topic][partition] + max(1 if lag else 0, lag * max_rows // total)
    return end


def read_ranges(client: dict[str, Any], ranges: tuple[OffsetRange, ...],
                timeout_s: float = 120.0) -> Iterator[pa.RecordBatch]:
    """Messages of each [start, end) as Arrow record batches, through one consumer.

    The ranges are read one after another, each with only its partition assigned and never asked for
    more messages than it has left, so no message past a range's end is handed to Python (with every
    partition assigned at once, a poll returned two to three times the messages of the ranges).
    Offsets need not be dense (compaction, transaction markers), so a range ends at ``end`` or at
    the partition's end, whichever comes first."""
    from confluent_kafka import Consumer

    consumer = Consumer({**client, "group.id": "logpipe-spark-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest",
                         # a fetch left waiting at a finished range's partition end delays the next range's
                         "fetch.wait.max.ms": 10})
    try:
        for topic in sorted({r.topic for r in ranges}):  # each topic's metadata up front: assigning a
            consumer.list_topics(topic, timeout=10)      # topic not yet known waited 0.5-0.9 s for it
        for offset_range in ranges:
            yield from _read_range(consumer, offset_range, timeout_s)
    finally:
        consumer.close()


def _read_range(consumer: Any, offset_range: OffsetRange, timeout_s: float) -> Iterator[pa.RecordBatch]:
    from confluent_kafka import KafkaError, Message, TopicPartition

    topic, partition, end = offset_range.topic, offset_range.partition, offset_range.end
    consumer.assign([TopicPartition(topic, partition, offset_range.start)])
    position, deadline = offset_range.start, time.monotonic() + timeout_s
    try:
        while position < end:
            messages = consumer.consume(num_messages=min(READ_CHUNK, end - position), timeout=0.05)
            if not messages:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic}/{partition} [{position}, {end}) stalled")
                continue
            at_partition_end = False
            errors = list(map(Message.error, messages))
            if any(errors):
                first = next(i for i, error in enumerate(errors) if error is not None)
                if errors[first].code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"{topic}/{partition}: {errors[first]}")
                messages, at_partition_end = messages[:first], True
            if any(p != partition for p in map(Message.partition, messages)) or any(
                    t != topic for t in map(Message.topic, messages)):  # never a range's but its own
                messages = [m for m in messages if m.partition() == partition and m.topic() == topic]
            offsets = np.fromiter(map(Message.offset, messages), np.int64, len(messages))
            inside = int(np.searchsorted(offsets, end))  # a partition's offsets only grow
            if inside:
                yield _record_batch(topic, partition, messages[:inside], offsets[:inside])
                position = int(offsets[inside - 1]) + 1
            if at_partition_end or inside < len(messages):
                return
    finally:
        consumer.unassign()


def _record_batch(topic: str, partition: int, messages: list, offsets: np.ndarray) -> pa.RecordBatch:
    """One partition's messages as the source's columns, each built from a list of the messages'
    fields (one call per field, not a row of Python objects per message)."""
    from confluent_kafka import Message

    count = len(messages)
    stamps = np.array(list(map(Message.timestamp, messages)), dtype=np.int64).reshape(count, 2)
    kinds, millis = stamps[:, 0], stamps[:, 1]
    headers = list(map(Message.headers, messages))
    if any(headers):
        header_column = pa.array([[{"key": k, "value": v} for k, v in h] if h else None for h in headers],
                                 ARROW_SCHEMA.field("headers").type)
    else:
        header_column = pa.nulls(count, ARROW_SCHEMA.field("headers").type)
    columns = [
        pa.array(list(map(Message.key, messages)), pa.binary()),
        pa.array(list(map(Message.value, messages)), pa.binary()),
        pa.repeat(pa.scalar(topic, pa.string()), count),
        pa.array(np.full(count, partition, dtype=np.int32)),
        pa.array(offsets),
        pa.array(millis * 1000, pa.timestamp("us", "UTC"), mask=millis < 0),
        # librdkafka's kinds (0 none, 1 create time, 2 log append time) to Spark's (0 create, 1 log append)
        pa.array(np.maximum(kinds - 1, 0).astype(np.int32)),
        header_column,
    ]
    return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)


class KafkaPythonSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> str:
        return KAFKA_COLUMNS

    def streamReader(self, schema: StructType) -> KafkaStreamReader:
        return KafkaStreamReader(self.options)  # keys are case-insensitive there
