"""The engine contract, written once: what every engine (the embedded processor, the Kafka processor,
Spark) does to write a batch, before it acknowledges it its own way.

A sink writes whole batches and is idempotent per token (``Sink``); it raises ``SinkError``, retryable
or permanent. ``write_batch`` owns the write of a batch, in this order and nothing else:

1. the dead letters, to every dead-letter sink (the ``dead_letter`` table; with Kafka also ``logs.dlq``);
2. the facts, to the fact sink. A batch the store rejects permanently is split in halves, left before
   right, down to the rows it refuses: each refused row is written as a dead letter with the store's
   reason before any row after it, and the rest are inserted. Rows keep their order, so with Kafka a
   partition's rows up to its highest inserted offset are all stored or dead-lettered, which is what
   recovery relies on (it resumes past that offset);
3. nothing more: the caller then acknowledges (resolves the HTTP futures, commits the Kafka offsets,
   or returns from Spark's ``foreachBatch``, which lets Spark write its checkpoint).

A retryable error is retried with exponential backoff and the same token, so a write that did land is
not stored twice; past ``give_up_at`` it is raised, and the caller acknowledges nothing. Delivery: facts
effectively once (insert tokens), dead letters at least once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.events import DEAD_LETTER_SCHEMA, TS_TYPE

log = logging.getLogger(__name__)


class SinkError(Exception):
    """A write that failed; ``retryable`` says whether the same write may succeed later."""

    def __init__(self, message: str, retryable: bool, code: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class Sink(Protocol):
    """Writes whole batches, idempotently: the same batch with the same token is stored once. Raises
    ``SinkError``. Each sink's docstring states its delivery guarantee."""

    name: str

    def write(self, batch: pa.Table, token: str) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.2
    max_s: float = 5.0


@dataclass
class Sinks:
    facts: Sink
    dead_letters: list[Sink]


@dataclass
class Refused:
    """A fact row the store refused: its position in the batch and the store's reason."""

    position: int
    reason: str


@dataclass
class Written:
    refused: list[Refused] = field(default_factory=list)
    facts_written: int = 0


def write_batch(facts: pa.Table, dead_letters: pa.Table, token: str, sinks: Sinks, policy: RetryPolicy,
                give_up_at: float | None = None, on_error: Callable[[str], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> Written:
    """Steps 1 and 2 of the contract for one batch; the caller acknowledges once this returns.
    Retryable errors are retried until ``give_up_at`` (forever without one), or until ``should_stop``."""
    writer = _Writer(sinks, policy, give_up_at, on_error, should_stop)
    if dead_letters.num_rows:
        writer.dead_letters(dead_letters, f"{token}:dead")
    written = Written()
    if facts.num_rows:
        writer.facts(facts, token, 0, written)
    return written


class _Writer:
    def __init__(self, sinks: Sinks, policy: RetryPolicy, give_up_at: float | None,
                 on_error: Callable[[str], None] | None, should_stop: Callable[[], bool] | None):
        self.sinks = sinks
        self.policy = policy
        self.give_up_at = give_up_at
        self.on_error = on_error
        self.should_stop = should_stop

    def dead_letters(self, table: pa.Table, token: str) -> None:
        for sink in self.sinks.dead_letters:
            self._write(sink, table, token)

    def facts(self, table: pa.Table, token: str, offset: int, written: Written) -> None:
        """``table`` is rows ``offset`` on of the batch; on a permanent rejection, its halves in order."""
        try:
            self._write(self.sinks.facts, table, token)
            written.facts_written += table.num_rows
            return
        except SinkError as exc:
            if exc.retryable:
                raise
            if table.num_rows == 1:
                reason = f"rejected by the store: {exc}"
                log.warning("fact row %d of batch %s refused: %s", offset, token, exc)
                self.dead_letters(refused_as_dead_letters(table, reason), f"{token}:refused")
                written.refused.append(Refused(offset, reason))
                return
        half = table.num_rows // 2
        self.facts(table.slice(0, half), f"{token}/{offset}+{half}", offset, written)
        rest = table.num_rows - half
        self.facts(table.slice(half), f"{token}/{offset + half}+{rest}", offset + half, written)

    def _write(self, sink: Sink, table: pa.Table, token: str) -> None:
        delay = self.policy.initial_s
        while True:
            try:
                sink.write(table, token)
                return
            except SinkError as exc:
                if self.on_error is not None:
                    self.on_error(f"{sink.name}: {exc}")
                if not exc.retryable:
                    raise
                if self.give_up_at is not None and time.monotonic() + delay > self.give_up_at:
                    raise
                if self.should_stop is not None and self.should_stop():
                    raise
                log.warning("%s write failed, retrying in %.1fs: %s", sink.name, delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, self.policy.max_s)


def refused_as_dead_letters(facts: pa.Table, reason: str, now_ms: int | None = None) -> pa.Table:
    """Fact rows the store refused, as dead letters: their provenance, the reason, and the row as
    normalized (the raw line is not kept for rows that passed normalization)."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    n = facts.num_rows
    raw = [orjson.dumps(row, default=str).decode() for row in facts.to_pylist()]
    return pa.table({
        "ingest_ts": pa.array(np.full(n, now_ms, dtype=np.int64)).cast(TS_TYPE),
        "source": pc.cast(facts.column("source"), pa.string()),
        "topic": pc.cast(facts.column("topic"), pa.string()),
        "partition": facts.column("partition"),
        "offset": facts.column("offset"),
        "reason": pa.array([reason] * n, pa.string()),
        "raw": pa.array(raw, pa.string()),
    }, schema=DEAD_LETTER_SCHEMA)
