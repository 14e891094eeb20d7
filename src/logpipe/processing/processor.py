"""The embedded stream processor: channel in, normalized batches out to the sinks.

One thread decodes and normalizes each payload as it arrives (pyarrow releases the GIL for
most of that work) and accumulates fact rows; when the batch is big enough, old enough, or
someone is waiting for it and nothing else is queued, it is sealed and handed to a committer
thread, whose ``Checkpoint`` writes it while the next batch is being normalized. Batches are
committed one at a time in the order they were sealed, and at most one waits for the committer,
so a slow store holds the processor back instead of piling batches up in memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from logpipe import metrics
from logpipe.events import Provenance
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.normalize import dead_letter_table, normalize_ndjson
from logpipe.processing.sink import Sink
from logpipe.transport.channel import Channel, Envelope, IngestResult
from logpipe.transport.wire import BadRecord, prepare_decoder
from logpipe.warehouse.errors import StoreError, classify

log = logging.getLogger(__name__)
MAX_ERRORS_REPORTED = 100


@dataclass
class PendingBatch:
    facts: list[pa.Table] = field(default_factory=list)
    dead_letters: list[pa.Table] = field(default_factory=list)
    acks: list[tuple[Future[IngestResult], IngestResult]] = field(default_factory=list)
    rows: int = 0
    opened_at: float = 0.0

    def add(self, facts: pa.Table, dead: pa.Table, acks: list[tuple[Future[IngestResult], IngestResult]]) -> None:
        if not self.facts and not self.dead_letters and not self.acks:
            self.opened_at = time.monotonic()
        if facts.num_rows:
            self.facts.append(facts)
        if dead.num_rows:
            self.dead_letters.append(dead)
        self.acks += acks
        self.rows += facts.num_rows

    @property
    def empty(self) -> bool:
        return not self.facts and not self.dead_letters and not self.acks


class Checkpoint:
    """Owns the commit order, so no source is acknowledged before its rows are durable.

    ``commit`` does, in this order and nothing else:

    1. write the fact rows to the fact sink (retrying retryable errors with the same token);
       rows the store rejects permanently become dead letters with the store's reason;
    2. write the dead letters to the dead-letter sink, same retry rule;
    3. acknowledge the sources: resolve the futures HTTP requests wait on (with accepted,
       rejected and reasons), or, with Kafka, commit the offsets (a subclass adds that step);
    4. forget the batch.

    If a write keeps failing until ``give_up_at``, the sources are failed (HTTP 503) instead
    of acknowledged: nothing unacknowledged is lost silently, nothing is acknowledged unwritten.
    """

    def __init__(self, fact_sink: Sink, dead_letter_sink: Sink, config: ProcessorConfig):
        self.fact_sink = fact_sink
        self.dead_letter_sink = dead_letter_sink
        self.config = config
        self.run_id = uuid.uuid4().hex[:12]
        self.sequence = 0
        self.last_error: str | None = None
        self.stopping = threading.Event()

    def _token(self, kind: str) -> str:
        return f"{self.run_id}:{self.sequence}:{kind}"

    def _write(self, sink: Sink, table: pa.Table, token: str, give_up_at: float | None) -> None:
        delay = self.config.retry_initial_s
        while True:
            try:
                sink.write(table, token)
                self.last_error = None
                return
            except Exception as exc:
                error = classify(exc)
                self.last_error = f"{sink.name}: {error}"
                if not error.retryable:
                    raise error from exc
                if give_up_at is not None and time.monotonic() + delay > give_up_at:
                    raise error from exc
                log.warning("%s write failed, retrying in %.1fs: %s", sink.name, delay, error)
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_s)

    def commit(self, batch: PendingBatch, give_up_at: float | None = None) -> None:
        self.sequence += 1
        dead = list(batch.dead_letters)
        try:
            if batch.facts:
                facts = pa.concat_tables(batch.facts)
                try:
                    self._write(self.fact_sink, facts, self._token("facts"), give_up_at)
                    record_freshness(facts)
                except StoreError as exc:
                    if exc.retryable:
                        raise
                    dead.append(_facts_as_dead_letters(facts, f"rejected by ClickHouse: {exc}"))
                    for _, result in batch.acks:
                        result.rejected += result.accepted
                        result.accepted = 0
            if dead:
                self._write(self.dead_letter_sink, pa.concat_tables(dead), self._token("dead"), give_up_at)
        except StoreError as exc:
            for future, _ in batch.acks:
                if not future.done():
                    future.set_exception(exc)
            raise
        for future, result in batch.acks:
            if not future.done():
                future.set_result(result)


def record_freshness(facts: pa.Table) -> None:
    """Now minus the newest event time just written."""
    newest = facts.column("ts").to_numpy().max().astype("int64") / 1000.0
    metrics.FRESHNESS_SECONDS.set(max(0.0, time.time() - newest))


def _facts_as_dead_letters(facts: pa.Table, reason: str) -> pa.Table:
    records = [BadRecord(i, orjson.dumps(row, default=str).decode(), reason)
               for i, row in enumerate(facts.to_pylist())]
    return dead_letter_table(records, Provenance("processor"))


class Committer:
    """Runs ``commit`` on each sealed batch on a thread of its own, in the order they are handed
    over, while the caller prepares the next; at most one waits, so a slow store holds the caller
    back instead of piling batches up in memory. Both processors commit through one."""

    _CLOSE = object()

    def __init__(self, name: str, commit: Callable[[Any], None]):
        self._commit = commit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Committer:
        self._thread.start()
        return self

    def put(self, sealed: Any) -> None:
        self._queue.put(sealed)

    def drain(self) -> None:
        """Return once every batch handed over is committed."""
        self._queue.join()

    def close(self) -> None:
        """Commit what was handed over, then end the thread."""
        self._queue.put(self._CLOSE)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        metrics.name_os_thread()
        while (sealed := self._queue.get()) is not self._CLOSE:
            try:
                self._commit(sealed)
            finally:
                self._queue.task_done()
        self._queue.task_done()


def _results_per_part(parts: list[Envelope], dead_records: list[BadRecord],
                      records: int) -> list[tuple[Envelope, IngestResult]]:
    """Each sender's accepted and rejected counts and reasons, with record positions within its own
    payload, from the normalization of the parts joined in order (one part: what was read counts,
    more: their record counts add up to it)."""
    sizes = [records] if len(parts) == 1 else [part.events for part in parts]
    results, start, bad = [], 0, 0
    for part, size in zip(parts, sizes, strict=True):
        end = start + size
        mine = []
        while bad < len(dead_records) and dead_records[bad].index < end:
            mine.append(dead_records[bad])
            bad += 1
        errors = [{"index": r.index - start, "reason": r.reason} for r in mine[:MAX_ERRORS_REPORTED]]
        results.append((part, IngestResult(size - len(mine), len(mine), errors)))
        start = end
    return results


class Processor:
    def __init__(self, channel: Channel, fact_sink: Sink, dead_letter_sink: Sink, config: ProcessorConfig):
        self.channel = channel
        self.config = config
        self.checkpoint = Checkpoint(fact_sink, dead_letter_sink, config)
        self.pending = PendingBatch()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()  # set while the loop honours a pause
        self._committer: Committer | None = None
        self.exceptions = 0
        metrics.register_component("processor")

    def start(self) -> None:
        prepare_decoder()
        self._stop.clear()
        self._committer = Committer("logpipe-committer", self._commit_sealed).start()
        self._thread = threading.Thread(target=self._run, name="logpipe-processor", daemon=True)
        self._thread.start()
        metrics.COMPONENT_UP.labels(component="processor").set(1)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._paused.is_set()

    def pause(self, timeout_s: float = 5.0) -> None:
        """Stop taking from the channel (for operators and failure drills); intake backs up.

        Returns once the loop has stopped taking, so nothing is taken after this call."""
        self._idle.clear()
        self._paused.set()
        self._idle.wait(timeout_s)
        metrics.COMPONENT_UP.labels(component="processor").set(0)

    def resume(self) -> None:
        self._paused.clear()
        metrics.COMPONENT_UP.labels(component="processor").set(1)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drain what is queued, commit it, then stop."""
        self._paused.clear()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._committer is not None:
            self._committer.join(timeout_s)
        metrics.COMPONENT_UP.labels(component="processor").set(0)

    def _run(self) -> None:
        metrics.name_os_thread()
        while True:
            if self._paused.is_set():
                self._idle.set()
                time.sleep(0.05)
                continue
            stopping = self._stop.is_set()
            envelope = self.channel.get(timeout=0.05)
            if envelope is not None:
                parts, held = self._coalesce(envelope)
                self._process(parts)
                if held is not None:
                    self._process([held])
            elif stopping:
                break
            metrics.QUEUE_EVENTS.labels(component="processor").set(self.channel.events)
            if self._due():
                self._commit()
        if not self.pending.empty:
            self._commit(give_up_after_s=10.0)
        self._committer.close()

    def _coalesce(self, first: Envelope) -> tuple[list[Envelope], Envelope | None]:
        """Queued payloads of one source, to be normalized in one call: the cost per call is mostly
        fixed, so many small batches (HTTP requests of 1,000 events, simulator ticks) cost far more
        than one big one. At most about one batch's worth (``batch_max_rows``), which bounds the memory
        a normalization takes. Returns them and, if one was taken that cannot join (Kafka offsets,
        another source or sender), that one."""
        if first.provenance.offsets is not None:
            return [first], None
        parts, events = [first], first.events
        while events < self.config.batch_max_rows:
            following = self.channel.get(timeout=0)
            if following is None:
                break
            if (following.provenance.offsets is not None or following.provenance.source != first.provenance.source
                    or following.provenance.sender != first.provenance.sender):
                return parts, following
            parts.append(following)
            events += following.events
        return parts, None

    def _due(self) -> bool:
        batch = self.pending
        if batch.empty:
            return False
        if batch.rows >= self.config.batch_max_rows:
            return True
        if time.monotonic() - batch.opened_at >= self.config.flush_interval_s:
            return True
        return bool(batch.acks) and self.channel.empty()

    def _commit(self, give_up_after_s: float | None = None) -> None:
        """Seal the pending batch and hand it to the committer (waits while one is already waiting)."""
        batch, self.pending = self.pending, PendingBatch()
        give_up_at = None
        if give_up_after_s is not None:
            give_up_at = time.monotonic() + give_up_after_s
        elif batch.acks:
            # Someone is waiting: fail them within their timeout rather than hold them forever.
            give_up_at = time.monotonic() + 20.0
        self._committer.put((batch, give_up_at))

    def _commit_sealed(self, sealed: tuple[PendingBatch, float | None]) -> None:
        batch, give_up_at = sealed
        try:
            self.checkpoint.commit(batch, give_up_at)
        except StoreError as exc:
            self.exceptions += 1
            metrics.PROCESSOR_EXCEPTIONS.inc()
            log.error("batch not written: %s", exc)

    def _process(self, parts: list[Envelope]) -> None:
        provenance = parts[0].provenance
        events = sum(part.events for part in parts)
        metrics.EVENTS_RECEIVED.labels(component="processor").inc(events)
        metrics.BYTES_RECEIVED.labels(component="processor").inc(sum(len(part.payload) for part in parts))
        payload = parts[0].payload if len(parts) == 1 else _joined_lines([part.payload for part in parts])
        try:
            with metrics.NORMALIZE_SECONDS.labels(component="processor").time():
                normalized = normalize_ndjson(payload, provenance)
            facts, dead_records, records = normalized.facts, normalized.dead_letters, normalized.record_count
        except Exception as exc:  # a bug must not lose the payload: it becomes a dead letter
            self.exceptions += 1
            metrics.PROCESSOR_EXCEPTIONS.inc()
            self.checkpoint.last_error = f"processor: {exc!r}"
            log.exception("normalization failed")
            facts = pa.table({})
            dead_records = [BadRecord(0, bytes(payload).decode("utf-8", "replace"), f"processor error: {exc!r}")]
            records = events
        if len(parts) > 1 and records != events and any(part.ack is not None for part in parts):
            # the senders' record counts do not add up to what was read (a line holding two
            # documents, say): answer each of them from a normalization of its own payload
            for part in parts:
                self._process([part])
            return
        dead = dead_letter_table(dead_records, provenance) if dead_records else pa.table({})
        metrics.EVENTS_SENT.labels(component="processor").inc(facts.num_rows)
        metrics.EVENTS_ERRORS.labels(component="processor").inc(len(dead_records))
        results = _results_per_part(parts, dead_records, records)
        self.pending.add(facts, dead, [(part.ack, result) for part, result in results if part.ack is not None])


def _joined_lines(payloads: list[bytes | pa.Buffer]) -> bytes:
    """One NDJSON document of several payloads, each ending its last line."""
    pieces: list[bytes | pa.Buffer] = []
    for payload in payloads:
        pieces.append(payload)
        if len(payload) and memoryview(payload)[-1] != 0x0A:
            pieces.append(b"\n")
    return b"".join(pieces)
