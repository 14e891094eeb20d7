"""The embedded stream processor: channel in, normalized batches out to the sinks.

One thread decodes and normalizes each payload as it arrives (pyarrow releases the GIL for
most of that work) and accumulates fact rows; when the batch is big enough, old enough, or
someone is waiting for it and nothing else is queued, it is sealed and handed to a committer
thread, which writes it by the engine contract (``contract.write_batch``) while the next batch is
being normalized, then acknowledges it: it resolves the futures HTTP requests wait on, with
accepted, rejected and reasons (rows the store refused among the rejected). Batches are committed
one at a time in the order they were sealed, and at most one waits for the committer, so a slow
store holds the processor back instead of piling batches up in memory. A write that keeps failing
until its senders' deadline fails them (HTTP 503): nothing unwritten is acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from logpipe import metrics
from logpipe.codec.ndjson import BadRecord, prepare_decoder
from logpipe.events import DEAD_LETTER_SCHEMA, FACT_SCHEMA
from logpipe.processing.committer import Committer, record_freshness
from logpipe.processing.config import ProcessorConfig
from logpipe.processing.contract import Refused, SinkError, Sinks, write_batch
from logpipe.processing.normalize import dead_letter_table, joined_records, normalize_ndjson, normalize_records
from logpipe.transport.channel import Channel, Envelope
from logpipe.transport.intake import IngestResult, Records

log = logging.getLogger(__name__)
MAX_ERRORS_REPORTED = 100


@dataclass
class _Sender:
    """One payload's share of a batch: who waits for it, what it will be told, and the record position
    at which its records begin in the document it was normalized in."""

    ack: Future[IngestResult] | None
    result: IngestResult
    first_record: int


@dataclass
class _Normalized:
    """The fact rows of one normalization and the senders whose payloads it read."""

    rows: int
    positions: np.ndarray  # record position of each fact row
    senders: list[_Sender]


@dataclass
class PendingBatch:
    facts: list[pa.Table] = field(default_factory=list)
    dead_letters: list[pa.Table] = field(default_factory=list)
    normalized: list[_Normalized] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    opened_at: float = 0.0
    token: str | None = None  # an idempotent request's own token; None: the processor names the batch

    def add(self, facts: pa.Table, dead: pa.Table, normalized: _Normalized) -> None:
        if self.empty:
            self.opened_at = time.monotonic()
        if facts.num_rows:
            self.facts.append(facts)
        if dead.num_rows:
            self.dead_letters.append(dead)
        self.normalized.append(normalized)
        self.rows += facts.num_rows
        self.bytes += facts.nbytes + dead.nbytes

    @property
    def empty(self) -> bool:
        return not self.facts and not self.dead_letters and not self.normalized

    @property
    def senders(self) -> list[_Sender]:
        return [sender for part in self.normalized for sender in part.senders]

    @property
    def waited_for(self) -> bool:
        return any(sender.ack is not None for sender in self.senders)

    def refuse(self, refused: Refused) -> None:
        """Count a fact row the store refused against the sender it came from."""
        row = refused.position
        for part in self.normalized:
            if row < part.rows:
                position = int(part.positions[row])
                sender = next(s for s in reversed(part.senders) if s.first_record <= position)
                sender.result.accepted -= 1
                sender.result.rejected += 1
                if len(sender.result.errors) < MAX_ERRORS_REPORTED:
                    sender.result.errors.append({"index": position - sender.first_record, "reason": refused.reason})
                return
            row -= part.rows


def _results_per_part(parts: list[Envelope], dead_records: list[BadRecord], records: int) -> list[_Sender]:
    """Each sender's accepted and rejected counts and reasons, with record positions within its own
    payload, from the normalization of the parts joined in order (one part: what was read counts,
    more: their record counts add up to it)."""
    sizes = [records] if len(parts) == 1 else [part.events for part in parts]
    senders, start, bad = [], 0, 0
    for part, size in zip(parts, sizes, strict=True):
        end = start + size
        mine = []
        while bad < len(dead_records) and dead_records[bad].index < end:
            mine.append(dead_records[bad])
            bad += 1
        errors = [{"index": r.index - start, "reason": r.reason} for r in mine[:MAX_ERRORS_REPORTED]]
        senders.append(_Sender(part.ack, IngestResult(size - len(mine), len(mine), errors), start))
        start = end
    return senders


class Processor:
    """``warm_decoder``: load the NDJSON scanner at start (numba: about 140 MB, and on a fresh machine
    seconds of compiling) rather than at the first NDJSON payload. Worth it where NDJSON comes from the
    start; a process fed only by sources that hand over columns (syslog) never loads it."""

    def __init__(self, channel: Channel, sinks: Sinks, config: ProcessorConfig, warm_decoder: bool = True):
        self.channel = channel
        self.warm_decoder = warm_decoder
        self.config = config
        self.sinks = sinks
        self.run_id = uuid.uuid4().hex[:12]
        self.sequence = 0
        self.last_error: str | None = None
        self.pending = PendingBatch()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()  # set while the loop honours a pause
        self._committer: Committer | None = None
        self.exceptions = 0
        metrics.register_component("processor")

    def start(self) -> None:
        if self.warm_decoder:
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
                self._take(parts)
                if held is not None:
                    self._take([held])
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
        than one big one. At most about one batch's worth (``batch_max_rows`` and ``batch_max_bytes``),
        which bounds the memory a normalization takes. Returns them and, if one was taken that cannot
        join (Kafka offsets, another source or sender), that one."""
        if first.provenance.offsets is not None or first.token is not None:
            return [first], None
        parts, events, size = [first], first.events, first.size
        columns = isinstance(first.payload, Records)
        while events < self.config.batch_max_rows and size < self.config.batch_max_bytes:
            following = self.channel.get(timeout=0)
            if following is None:
                break
            if (following.provenance.offsets is not None or following.provenance.source != first.provenance.source
                    or following.provenance.sender != first.provenance.sender or following.token is not None
                    or isinstance(following.payload, Records) != columns):
                return parts, following
            parts.append(following)
            events += following.events
            size += following.size
        return parts, None

    def _due(self) -> bool:
        batch = self.pending
        if batch.empty:
            return False
        if batch.rows >= self.config.batch_max_rows or batch.bytes >= self.config.insert_max_bytes:
            return True
        if time.monotonic() - batch.opened_at >= self.config.flush_interval_s:
            return True
        return batch.waited_for and self.channel.empty()

    def _take(self, parts: list[Envelope]) -> None:
        """Normalize into the pending batch; an idempotent request becomes a batch of its own, written
        with its token (ClickHouse's deduplication then catches a retry after a restart too)."""
        token = parts[0].token
        if token is None:
            self._process(parts)
            return
        if not self.pending.empty:
            self._commit()
        self._process(parts)
        self.pending.token = token
        self._commit()

    def _commit(self, give_up_after_s: float | None = None) -> None:
        """Seal the pending batch and hand it to the committer (waits while one is already waiting)."""
        batch, self.pending = self.pending, PendingBatch()
        give_up_at = None
        if give_up_after_s is not None:
            give_up_at = time.monotonic() + give_up_after_s
        elif batch.waited_for:
            # Someone is waiting: fail them within their timeout rather than hold them forever.
            give_up_at = time.monotonic() + 20.0
        self._committer.put((batch, give_up_at))

    def _commit_sealed(self, sealed: tuple[PendingBatch, float | None]) -> None:
        """On the committer thread: write by the contract, then acknowledge (or fail) every sender."""
        batch, give_up_at = sealed
        self.sequence += 1
        facts = pa.concat_tables(batch.facts) if batch.facts else FACT_SCHEMA.empty_table()
        dead = pa.concat_tables(batch.dead_letters) if batch.dead_letters else DEAD_LETTER_SCHEMA.empty_table()
        try:
            written = write_batch(facts, dead, batch.token or f"{self.run_id}:{self.sequence}", self.sinks,
                                  self.config.retry, give_up_at, on_error=self._note_error)
        except SinkError as exc:
            self.exceptions += 1
            metrics.PROCESSOR_EXCEPTIONS.inc()
            log.error("batch not written: %s", exc)
            for sender in batch.senders:
                if sender.ack is not None and not sender.ack.done():
                    sender.ack.set_exception(exc)
            return
        self.last_error = None
        record_freshness(facts)
        for refused in written.refused:
            batch.refuse(refused)
        for sender in batch.senders:
            if sender.ack is not None and not sender.ack.done():
                sender.ack.set_result(sender.result)

    def _note_error(self, error: str) -> None:
        self.last_error = error

    def _process(self, parts: list[Envelope]) -> None:
        provenance = parts[0].provenance
        events = sum(part.events for part in parts)
        metrics.EVENTS_RECEIVED.labels(component="processor").inc(events)
        metrics.BYTES_RECEIVED.labels(component="processor").inc(sum(part.size for part in parts))
        if isinstance(parts[0].payload, Records):
            payload = parts[0].payload if len(parts) == 1 else joined_records([part.payload for part in parts])
        else:
            payload = parts[0].payload if len(parts) == 1 else _joined_lines([part.payload for part in parts])
        try:
            with metrics.NORMALIZE_SECONDS.labels(component="processor").time():
                if isinstance(payload, Records):
                    normalized = normalize_records(payload, provenance, rules=self.config.rules)
                else:
                    normalized = normalize_ndjson(payload, provenance, rules=self.config.rules)
        except Exception as exc:  # a defect: the payload is kept as a dead letter, its senders told it failed
            self._normalization_failed(parts, payload, exc)
            return
        facts, dead_records, records = normalized.facts, normalized.dead_letters, normalized.record_count
        if len(parts) > 1 and records != events and any(part.ack is not None for part in parts):
            # the senders' record counts do not add up to what was read (a line holding two
            # documents, say): answer each of them from a normalization of its own payload
            for part in parts:
                self._process([part])
            return
        dead = dead_letter_table(dead_records, provenance) if dead_records else DEAD_LETTER_SCHEMA.empty_table()
        metrics.EVENTS_SENT.labels(component="processor").inc(facts.num_rows)
        metrics.EVENTS_ERRORS.labels(component="processor").inc(len(dead_records))
        senders = _results_per_part(parts, dead_records, records)
        self.pending.add(facts, dead, _Normalized(facts.num_rows, normalized.fact_positions, senders))

    def _normalization_failed(self, parts: list[Envelope], payload: bytes | pa.Buffer | Records,
                              exc: Exception) -> None:
        """Nothing is claimed: every sender waiting for these payloads gets the error (HTTP 5xx), and the
        payload is kept whole as one dead letter, so a defect loses nothing."""
        self.exceptions += 1
        metrics.PROCESSOR_EXCEPTIONS.inc()
        self.last_error = f"processor: {exc!r}"
        log.exception("normalization failed")
        text = payload.text() if isinstance(payload, Records) else bytes(payload).decode("utf-8", "replace")
        record = BadRecord(0, text, f"processor error: {exc!r}")
        failure = RuntimeError(f"the batch could not be processed ({exc!r}); nothing of it was stored as facts")
        for part in parts:
            if part.ack is not None and not part.ack.done():
                part.ack.set_exception(failure)
        dead = dead_letter_table([record], parts[0].provenance)
        self.pending.add(FACT_SCHEMA.empty_table(), dead, _Normalized(0, np.empty(0, np.int64), []))


def _joined_lines(payloads: list[bytes | pa.Buffer]) -> bytes:
    """One NDJSON document of several payloads, each ending its last line."""
    pieces: list[bytes | pa.Buffer] = []
    for payload in payloads:
        pieces.append(payload)
        if len(payload) and memoryview(payload)[-1] != 0x0A:
            pieces.append(b"\n")
    return b"".join(pieces)
