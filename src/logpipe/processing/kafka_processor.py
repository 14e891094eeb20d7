"""The Kafka processor: consumer group -> batches of polled messages -> ClickHouse, offsets committed after.

Delivery: facts effectively once, dead letters at least once.

- Each batch is written by the engine contract (``contract.write_batch``: dead letters to
  ``analytics.dead_letter`` and ``logs.dlq``, then facts; a batch the store rejects for good is split
  down to the rows it refuses, which become dead letters), then its offsets are committed: the
  acknowledgement step, synchronous, on the consumer's thread (``KafkaCheckpoint``).
- Auto-commit is off; offsets are committed only after the partition's rows are in ClickHouse.
- A batch holds contiguous offsets of each partition it covers and is inserted with a token naming
  those ``topic:partition:first-last`` ranges, so a retried insert is a no-op.
- A sealed batch is normalized and written on a committer thread while the consumer thread reads
  the next one; the consumer thread commits the offsets of written batches, strictly in order. While
  a batch is written the next one grows (until full), so under load each insert takes what came
  during the one before. At most one sealed batch waits, and a revoke or stop first waits for every
  sealed batch to be written and its offsets committed.
- Batch boundaries after a crash need not match the ones before it, so on assignment each
  partition is positioned past the highest offset already in ``fact_log`` for it: rows inserted
  but not committed before a crash are not read again.
- Poison messages go to ``logs.dlq`` (headers: error, origin topic, partition, offset) and to
  ``analytics.dead_letter``; the offset moves on. A retryable store error is retried with backoff
  and the same tokens; no error stops the consumer on a batch for good.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from logpipe import metrics
from logpipe.codec.ndjson import prepare_decoder
from logpipe.processing.committer import Committer, record_freshness
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.contract import Sink, Sinks, write_batch
from logpipe.processing.normalize import normalize_messages, unreadable_messages
from logpipe.processing.sinks import DeadLetterTopicSink
from logpipe.transport.kafka import KafkaConfig, KafkaProducerTransport, consumer_settings
from logpipe.transport.topics import dlq_topic, named_by_headers, subscription_pattern
from logpipe.warehouse import queries
from logpipe.warehouse.base import Warehouse

log = logging.getLogger(__name__)
COMPONENT = "kafka_processor"
POLL_MESSAGES = 20_000  # at most, per poll
GROUP_MOVED_ON = frozenset({KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
                            KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID,
                            KafkaError._STATE, KafkaError._ASSIGNMENT_LOST})


@dataclass
class Polled:
    """Messages polled since the last flush, as columns (one list per field, not one object each)."""

    values: list[bytes | None] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    headers: list[list[tuple[str, bytes]] | None] | None = None  # kept once some message has headers
    size: int = 0  # bytes of the values

    def add(self, messages: list) -> None:
        headers = list(map(Message.headers, messages))  # None for a message without: 30 ns each
        if self.headers is not None or any(headers):
            if self.headers is None:
                self.headers = [None] * len(self.offsets)
            self.headers += headers
        values = list(map(Message.value, messages))  # unbound methods: no attribute lookup per message
        self.size += sum(map(len, filter(None, values)))
        self.values += values
        self.topics += map(Message.topic, messages)
        self.partitions += map(Message.partition, messages)
        self.offsets += map(Message.offset, messages)

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass
class SealedBatch:
    """What one commit writes and then acknowledges."""

    facts: pa.Table
    dead_letters: pa.Table
    token: str
    next_offsets: list[TopicPartition]


class KafkaCheckpoint:
    """The acknowledgement step for Kafka batches: commit the next offsets synchronously, once the
    contract has written the batch; and commit again what the group refused during a rebalance."""

    def __init__(self, consumer: Consumer):
        self.consumer = consumer
        # (topic, partition) -> next offset of rows already in ClickHouse whose commit the group refused
        self.refused: dict[tuple[str, int], int] = {}
        self._recommit_at = 0.0

    def commit_offsets(self, next_offsets: list[TopicPartition]) -> None:
        """On the consumer's own thread (a synchronous commit from another thread can wait until the
        consumer stops polling)."""
        if next_offsets:
            started = time.perf_counter()
            try:
                self.consumer.commit(offsets=next_offsets, asynchronous=False)
            except KafkaException as exc:
                if exc.args[0].code() not in GROUP_MOVED_ON:
                    raise
                # The group rebalanced meanwhile. The rows are in ClickHouse: a partition that went to
                # another member is resumed by it past the highest inserted offset, so nothing is lost
                # or doubled; one still ours is committed again once the group has settled
                # (recommit_refused), or its lag would stand until new messages came.
                log.warning("commit refused during a rebalance (%s); committing again for the partitions "
                            "this member keeps", exc.args[0].str())
                self.commit_later(next_offsets)
                return
            self.forget_refused(next_offsets)
            metrics.KAFKA_COMMIT_SECONDS.observe(time.perf_counter() - started)
            for tp in next_offsets:
                high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high is not None and high[1] >= 0:
                    lag = max(0, high[1] - tp.offset)
                    metrics.KAFKA_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    def commit_later(self, offsets: list[TopicPartition]) -> None:
        """Offsets the group refused to commit for now, to be committed by ``recommit_refused``."""
        for tp in offsets:
            self.refused[(tp.topic, tp.partition)] = tp.offset

    def forget_refused(self, partitions: list[TopicPartition]) -> None:
        """Refused offsets these partitions no longer need: committed since, or covered by a resumed position."""
        if self.refused:
            for tp in partitions:
                self.refused.pop((tp.topic, tp.partition), None)

    def recommit_refused(self, every_s: float = 1.0) -> None:
        """Commit refused offsets again for the partitions this member still owns (at most every
        ``every_s``, while a rebalance may still be settling); the others are their new owner's."""
        if not self.refused or time.monotonic() < self._recommit_at:
            return
        self._recommit_at = time.monotonic() + every_s
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        self.refused = {key: offset for key, offset in self.refused.items() if key in owned}
        self.commit_offsets([TopicPartition(topic, partition, offset)
                             for (topic, partition), offset in self.refused.items()])


class KafkaProcessor:
    def __init__(self, kafka: KafkaConfig, store: Warehouse, fact_sink: Sink, dead_letter_sink: Sink,
                 config: ProcessorConfig):
        self.kafka = kafka
        self.store = store
        self.config = config
        self.consumer = Consumer(kafka.client(**consumer_settings(kafka.group_id)))
        self.dlq = KafkaProducerTransport(kafka, component="dlq_producer")
        self.sinks = Sinks(fact_sink, [dead_letter_sink, DeadLetterTopicSink(self.dlq, dlq_topic(kafka.topic_prefix))])
        self.checkpoint = KafkaCheckpoint(self.consumer)
        self.last_error: str | None = None
        self.polled = Polled()
        self.opened_at = 0.0
        self._stop = threading.Event()
        self.exceptions = 0
        self._committer: Committer | None = None
        self._written: queue.Queue[list[TopicPartition]] = queue.Queue()  # offsets to commit, in order
        self._commit_failure: BaseException | None = None
        metrics.register_component(COMPONENT)

    # group membership ----------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # a refused commit of ours is older than the resumed position, which covers its rows
        self.checkpoint.forget_refused(partitions)
        positioned, resumed = [], []
        for tp in partitions:
            inserted = self._max_inserted_offset(tp.topic, tp.partition)
            if inserted is not None:
                tp.offset = inserted + 1
                resumed.append(TopicPartition(tp.topic, tp.partition, inserted + 1))
            positioned.append(tp)
        consumer.incremental_assign(positioned)
        log.info("assigned %s", [(tp.topic, tp.partition, tp.offset) for tp in positioned])
        if resumed:
            # Rows up to these offsets are in ClickHouse already (inserted before a crash, not committed):
            # commit them, so the group's offsets and lag say what is really done even if nothing new comes.
            try:
                consumer.commit(offsets=resumed, asynchronous=False)
            except KafkaException as exc:
                log.warning("could not commit the resumed positions yet: %s", exc)
                if exc.args[0].code() in GROUP_MOVED_ON:
                    self.checkpoint.commit_later(resumed)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # flush and commit what is done for these partitions before giving them up
        self.flush()
        self._committer.drain()
        self._commit_written()
        consumer.incremental_unassign(partitions)
        log.info("revoked %s after committing what was done", [(tp.topic, tp.partition) for tp in partitions])

    def _max_inserted_offset(self, topic: str, partition: int) -> int | None:
        value = self.store.scalar(queries.in_database(queries.MAX_INSERTED_OFFSET, self.store.database),
                                  {"topic": topic, "partition": partition})
        return None if value is None else int(value)

    # loop ------------------------------------------------------------------------------------------
    def run(self) -> None:
        metrics.name_os_thread()
        prepare_decoder()  # before joining the group: a first compile would outlast a rebalance
        self.consumer.subscribe([subscription_pattern(self.kafka.topic_prefix)],
                                on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(1)
        self._committer = Committer("logpipe-kafka-committer", self._write_sealed).start()
        try:
            while not self._stop.is_set():
                self._raise_commit_failure()
                self._commit_written()
                self.checkpoint.recommit_refused()
                messages = self.consumer.consume(num_messages=POLL_MESSAGES, timeout=0.1)
                good = messages
                if any(map(Message.error, messages)):  # rare, so the common case is one C-level pass
                    good = []
                    for message in messages:
                        if message.error() is None:
                            good.append(message)
                        else:
                            log.warning("consumer error: %s", message.error())
                if good and not self.polled:
                    self.opened_at = time.monotonic()
                self.polled.add(good)
                metrics.EVENTS_RECEIVED.labels(component=COMPONENT).inc(len(messages))
                newest_age_s = None
                if messages and messages[-1].error() is None:
                    kind, stamp_ms = messages[-1].timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE:
                        newest_age_s = max(0.0, time.time() - stamp_ms / 1000)
                        metrics.KAFKA_RECORD_AGE_SECONDS.observe(newest_age_s)
                # caught up: nothing more to read, or reading records as they are produced (a backlog's are older)
                live = newest_age_s is not None and newest_age_s < self.config.flush_interval_s
                if self._due(caught_up=not messages or live):
                    self.flush()
            self.flush()
            self._committer.drain()
            self._raise_commit_failure()
            self._commit_written()
        finally:
            self._committer.close()
            self._committer.join(60)
            metrics.COMPONENT_UP.labels(component=COMPONENT).set(0)
            self.consumer.close()
            self.dlq.close()

    def _due(self, caught_up: bool) -> bool:
        """Full (rows or bytes); else, while the committer writes the last batch, never: this one grows
        meanwhile, so under load each insert takes what came during the one before and the store's
        fixed cost per insert (a part for the table and for each of its views) is paid once per write,
        not once per poll. Otherwise old enough; or, once caught up (a poll comes back empty, or its
        newest record was produced less than an interval ago: a live stream, not a backlog), a fifth of
        that age, so rows wait a fifth of the interval, not all of it, while inserts stay at a few per
        second; a backlog is drained in batches of the whole interval."""
        if not self.polled:
            return False
        if len(self.polled) >= self.config.batch_max_rows or self.polled.size >= self.config.batch_max_bytes:
            return True
        if self._committer.busy:
            return False
        age = time.monotonic() - self.opened_at
        return age >= self.config.flush_interval_s or (caught_up and age >= self.config.flush_interval_s / 5)

    def stop(self) -> None:
        self._stop.set()

    def flush(self) -> None:
        """Hand what was polled to the committer thread, which normalizes and writes it in order
        (commits follow the checkpoint's order), while this thread goes back to polling: normalizing
        here left the consumer idle for a third of a drain."""
        if not self.polled:
            return
        polled, self.polled = self.polled, Polled()
        self._raise_commit_failure()
        self._committer.put(polled)

    def _seal(self, polled: Polled) -> SealedBatch:
        """Polled messages normalized into what one commit writes: fact rows and dead letters. A defect in
        normalization makes every message of the batch a dead letter with its reason, rather than a
        consumer that stops on the batch for good."""
        topics, partitions, offsets = pa.array(polled.topics, pa.string()), np.array(polled.partitions), \
            np.array(polled.offsets)
        try:
            with metrics.NORMALIZE_SECONDS.labels(component=COMPONENT).time():
                senders, sources, refusals = named_by_headers(polled.headers)
                normalized = normalize_messages(topics, partitions, offsets, polled.values, senders=senders,
                                                rules=self.config.rules, sources=sources, refusals=refusals)
        except Exception as exc:
            self.exceptions += 1
            metrics.PROCESSOR_EXCEPTIONS.inc()
            log.exception("normalization failed; the batch's messages become dead letters")
            normalized = unreadable_messages(topics, partitions, offsets, polled.values, f"processor error: {exc!r}")
        metrics.BYTES_RECEIVED.labels(component=COMPONENT).inc(normalized.payload_bytes)
        next_offsets = [TopicPartition(topic, partition, last + 1) for topic, partition, _, last in normalized.ranges]
        metrics.EVENTS_SENT.labels(component=COMPONENT).inc(normalized.facts.num_rows)
        metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc(len(normalized.bad))
        # one insert for all partitions, named by their offset ranges
        return SealedBatch(normalized.facts, normalized.dead_letters, normalized.token, next_offsets)

    def _write_sealed(self, polled: Polled) -> None:
        """On the committer thread, in order: write by the contract, then hand the offsets to the consumer
        thread to commit. A write that gives up (only at shutdown: retryable errors are retried, the
        others dead-letter their rows) writes no later batch, whose offsets would acknowledge this one's."""
        if self._commit_failure is not None:
            return
        try:
            sealed = self._seal(polled)
            written = write_batch(sealed.facts, sealed.dead_letters, sealed.token, self.sinks, self.config.retry,
                                  on_error=self._note_error, should_stop=self._stop.is_set)
            record_freshness(sealed.facts)
            if written.refused:
                metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc(len(written.refused))
            self.last_error = None
            self._written.put(sealed.next_offsets)
        except Exception as exc:  # handed to the consumer thread, which raises it
            self.exceptions += 1
            metrics.PROCESSOR_EXCEPTIONS.inc()
            self._commit_failure = exc

    def _note_error(self, error: str) -> None:
        self.last_error = error

    def _commit_written(self) -> None:
        while not self._written.empty():
            self.checkpoint.commit_offsets(self._written.get())

    def _raise_commit_failure(self) -> None:
        if self._commit_failure is not None:
            raise self._commit_failure

