"""What a source hands its records to, and what it hears back: the intake side of every engine.

The HTTP gateway (and later sources) call ``Intake.submit`` and answer their protocol from the
outcome: a result once the records are durable, ``Overloaded`` (HTTP 429), ``ShuttingDown`` (503).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa


@dataclass
class Records:
    """Events a source has read into columns already (OTLP, syslog, files): the wire fields by name, with
    the types the normalizer reads (a timestamp column for ``ts``), fields that have no column as an
    ``attributes`` map of strings, and each event's raw text, which a dead letter keeps. They skip the
    JSON decoding that a body of NDJSON takes."""

    table: pa.Table
    raw: pa.Array | None = None
    reasons: pa.Array | None = None  # why the source could not read a row (null: it could); such a row is a dead letter

    @property
    def nbytes(self) -> int:
        return self.table.nbytes + sum(a.nbytes for a in (self.raw, self.reasons) if a is not None)

    def __len__(self) -> int:
        return self.table.num_rows

    def text(self) -> str:
        """The events as text, one a line: their raw text where kept, else their columns as JSON."""
        if self.raw is not None:
            return "\n".join(str(v) for v in self.raw.to_pylist())
        return "\n".join(json.dumps(row, default=str) for row in self.table.to_pylist())


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)


class Overloaded(Exception):
    """The pipeline cannot take more now; retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: float = 1.0):
        super().__init__("pipeline is at capacity")
        self.retry_after_s = retry_after_s


class ShuttingDown(Exception):
    pass


class KeyReused(Exception):
    """An idempotency key sent again with another body: a client's mistake, never a retry."""


class Intake(Protocol):
    def submit(self, payload: bytes | Records, events: int, source: str = "http", sender: str = "",
               key: str | None = None) -> Future[IngestResult]:
        """Hand records on without waiting for room; the future resolves once they are durable (or fails:
        nothing is then claimed). Raises ``Overloaded``, ``ShuttingDown`` or ``KeyReused`` at once.
        ``key`` is the sender's idempotency key: the same key and body again stores the records once."""
        ...


def idempotency_token(sender: str, key: str, payload: bytes | Records) -> str:
    """The insert token of a keyed request: its sender, key and body (a source's records: their raw
    text), hashed, so only a true retry matches."""
    digest = hashlib.sha256(sender.encode() + b"\0" + key.encode() + b"\0")
    if isinstance(payload, Records):
        raw = payload.raw if payload.raw is not None else pa.array([payload.text()])
        raw = pa.concat_arrays([raw])  # its own buffers, holding just these values
        for buffer in raw.buffers():
            if buffer is not None:
                digest.update(buffer)
    else:
        digest.update(payload)
    return f"idem:{digest.hexdigest()[:40]}"


class RecentKeys:
    """The idempotency keys of the last ``keep_s`` (at most ``capacity``): a retry of one waits for, and
    is answered with, the outcome of the first. Failed outcomes are forgotten, so a retry can succeed."""

    def __init__(self, keep_s: float = 600.0, capacity: int = 100_000):
        self.keep_s = keep_s
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], tuple[float, str, Future[IngestResult]]] = OrderedDict()
        self._lock = threading.Lock()

    def submit_once(self, sender: str, key: str, token: str,
                    submit: Callable[[], Future[IngestResult]]) -> Future[IngestResult]:
        """The first request's future when this is a retry of it; else ``submit()``'s, remembered. Raises
        ``KeyReused`` for the same key with another body. One key at a time, so two concurrent sends of
        a request do not both go through."""
        now = time.monotonic()
        with self._lock:
            while self._entries and (len(self._entries) > self.capacity
                                     or next(iter(self._entries.values()))[0] < now - self.keep_s):
                self._entries.popitem(last=False)
            entry = self._entries.get((sender, key))
            if entry is not None:
                _, first_token, future = entry
                if first_token != token:
                    raise KeyReused(f"Idempotency-Key {key!r} was sent with another body in the last "
                                    f"{self.keep_s:.0f}s")
                return future
            future = submit()
            self._entries[(sender, key)] = (now, token, future)

        def forget_failure(done: Future[IngestResult]) -> None:
            if done.exception() is not None:
                with self._lock:
                    if self._entries.get((sender, key), (0.0, "", None))[2] is done:
                        del self._entries[(sender, key)]

        future.add_done_callback(forget_failure)
        return future
