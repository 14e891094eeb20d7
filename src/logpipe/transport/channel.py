"""The in-process channel: what stands between intake and processor when no Kafka is configured.

Bounded by events and by bytes, not messages: a full channel makes the simulator wait and the ingest
API answer 429, so memory stays bounded whatever the offered load, many small events or a few large.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from logpipe.events import Provenance
from logpipe.transport.intake import IngestResult, Records


@dataclass
class Envelope:
    """One payload of events and who waits for it to become durable."""

    payload: bytes | pa.Buffer | Records  # NDJSON (the in-process simulator's stays in its Arrow buffer), or columns
    events: int
    provenance: Provenance
    ack: Future[IngestResult] | None = None
    token: str | None = None  # an idempotent request's insert token: it is written on its own with it

    @property
    def size(self) -> int:
        """Bytes the payload holds, as the channel's byte bound counts them."""
        return self.payload.nbytes if isinstance(self.payload, Records) else len(self.payload)


class ChannelFull(Exception):
    pass


class ChannelClosed(Exception):
    pass


class Channel:
    def __init__(self, max_events: int, max_bytes: int = 1 << 62):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._items: deque[Envelope] = deque()
        self._events = 0
        self._bytes = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def events(self) -> int:
        return self._events

    @property
    def bytes(self) -> int:
        return self._bytes

    def _fits(self, envelope: Envelope) -> bool:
        # An oversized envelope is admitted into an empty channel, so it can never wait forever.
        if self._events == 0:
            return True
        return (self._events + envelope.events <= self.max_events
                and self._bytes + envelope.size <= self.max_bytes)

    def put(self, envelope: Envelope, timeout: float | None = None) -> None:
        """Block until there is room (backpressure); ``timeout=0`` raises ChannelFull at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._fits(envelope):
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
            self._bytes += envelope.size
            self._cond.notify_all()

    def get(self, timeout: float) -> Envelope | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            envelope = self._items.popleft()
            self._events -= envelope.events
            self._bytes -= envelope.size
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
