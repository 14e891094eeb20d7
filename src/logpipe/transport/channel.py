"""The in-process channel: what stands between intake and processor when no Kafka is configured.

Bounded by events, not messages: a full channel makes the simulator wait and the ingest API
answer 429, so memory stays bounded whatever the offered load.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

from logpipe.events import Provenance


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)


@dataclass
class Envelope:
    """One NDJSON payload and who waits for it to become durable."""

    payload: bytes | pa.Buffer  # NDJSON; the in-process simulator's stays in its Arrow buffer
    events: int
    provenance: Provenance
    ack: Future[IngestResult] | None = None


class ChannelFull(Exception):
    pass


class ChannelClosed(Exception):
    pass


class Channel:
    def __init__(self, max_events: int):
        self.max_events = max_events
        self._items: deque[Envelope] = deque()
        self._events = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def events(self) -> int:
        return self._events

    def _fits(self, events: int) -> bool:
        # An oversized envelope is admitted into an empty channel, so it can never wait forever.
        return self._events == 0 or self._events + events <= self.max_events

    def put(self, envelope: Envelope, timeout: float | None = None) -> None:
        """Block until there is room (backpressure); ``timeout=0`` raises ChannelFull at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._fits(envelope.events):
                if self._closed:
                    raise ChannelClosed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ChannelFull
                self._cond.wait(remaining)
            if self._closed:
                raise ChannelClosed
            self._items.append(envelope)
            self._events += envelope.events
            self._cond.notify_all()

    def get(self, timeout: float) -> Envelope | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            envelope = self._items.popleft()
            self._events -= envelope.events
            self._cond.notify_all()
            return envelope

    def empty(self) -> bool:
        return not self._items

    def close(self) -> None:
        """No more puts; what is queued can still be drained."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
