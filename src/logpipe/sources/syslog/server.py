"""The syslog listeners: UDP (a datagram a message) and TCP (RFC 6587: octet counting, or messages
ended by a newline or a NUL, as Python's SysLogHandler sends), on one port, in an asyncio loop of
their own thread.

Messages gather into batches (by count, bytes and age) that a flusher thread parses and hands to the
intake. When the intake is full the flusher waits and the TCP connections stop being read, so the
senders' own buffers fill (TCP backpressure); UDP datagrams that arrive meanwhile are dropped and
counted, as UDP has no way to slow a sender. Syslog has no acknowledgements and no credentials: only
peers in ``allowed_networks`` are heard, others are counted and ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import queue
import socket
import threading
import time
from concurrent.futures import Future

import pyarrow as pa

from logpipe import metrics
from logpipe.sources.syslog.config import SyslogConfig
from logpipe.sources.syslog.parse import parse_messages
from logpipe.transport.intake import IngestResult, Intake, Overloaded, ShuttingDown

log = logging.getLogger(__name__)
COMPONENT = "syslog"
SOURCE = "syslog"


class _Batch:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.refused: dict[int, str] = {}
        self.bytes = 0
        self.opened_at = time.monotonic()

    def add(self, message: bytes, refused: str | None = None) -> None:
        if refused is not None:
            self.refused[len(self.messages)] = refused
        self.messages.append(message)
        self.bytes += len(message)


class SyslogServer:
    def __init__(self, intake: Intake, config: SyslogConfig):
        self.intake = intake
        self.config = config
        self.networks = [ipaddress.ip_network(n, strict=False) for n in config.allowed_networks]
        self._peers: dict[str, bool] = {}
        self._batch = _Batch()
        self._ready: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tcp: set[asyncio.Transport] = set()
        self._paused = False
        self._thread: threading.Thread | None = None
        self._flusher: threading.Thread | None = None
        self._outstanding: list[Future[IngestResult]] = []
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.port = config.port
        metrics.register_component(COMPONENT)

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> SyslogServer:
        self._flusher = threading.Thread(target=self._flush_loop, name="logpipe-syslog-flush", daemon=True)
        self._flusher.start()
        self._thread = threading.Thread(target=self._serve, name="logpipe-syslog", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s) or self._failure is not None:
            raise RuntimeError(f"syslog listener on {self.config.host}:{self.config.port} did not start: "
                               f"{self._failure}") from self._failure
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(1)
        log.info("syslog listening on %s:%d (udp, tcp)", self.config.host, self.port)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop listening, hand on what was received, and wait (bounded) until it is stored."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._shutdown)
            self._thread.join(timeout_s)
        self._ready.put(None)
        if self._flusher is not None:
            self._flusher.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        for future in self._outstanding:
            try:
                future.result(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("syslog messages not stored at shutdown: %s", exc)
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(0)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        self._tcp_server = await loop.create_server(lambda: _TcpFraming(self), self.config.host, self.config.port,
                                                    family=family, reuse_address=True)
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self),
                                                           local_addr=(self.config.host, self.port), family=family)
        self._timer = loop.call_later(self.config.flush_interval_s, self._tick)

    def _shutdown(self) -> None:
        self._timer.cancel()
        self._tcp_server.close()
        self._udp.close()
        for transport in list(self._tcp):
            transport.close()
        self._hand_on(wait=True)
        self._loop.stop()

    # intake --------------------------------------------------------------------------------------
    def allowed(self, peer: tuple | None) -> bool:
        host = str(peer[0]) if peer else ""
        known = self._peers.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host.split("%")[0])
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                known = any(address in network for network in self.networks)
            except ValueError:
                known = False
            if not known:
                log.warning("syslog from %s ignored: not in LOGPIPE_SYSLOG_ALLOWED_NETWORKS", host)
            if len(self._peers) < 10_000:
                self._peers[host] = known
        return known

    def received(self, message: bytes, refused: str | None = None, datagram: bool = False) -> None:
        """On the loop: one framed message (with why it is refused, when it is). While the intake is
        full, a datagram past a full batch is dropped; TCP stops being read, so what was read already
        still fits (one read's worth past the batch)."""
        if datagram and self._paused and len(self._batch.messages) >= self.config.batch_max_messages:
            metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc()
            return
        self._batch.add(message, refused)
        if (len(self._batch.messages) >= self.config.batch_max_messages
                or self._batch.bytes >= self.config.batch_max_bytes):
            self._hand_on()

    def _tick(self) -> None:
        if self._batch.messages and time.monotonic() - self._batch.opened_at >= self.config.flush_interval_s:
            self._hand_on()
        self._timer = self._loop.call_later(self.config.flush_interval_s / 2, self._tick)

    def _hand_on(self, wait: bool = False) -> None:
        if not self._batch.messages:
            return
        try:
            self._ready.put(self._batch, block=wait, timeout=30 if wait else None)
        except queue.Full:
            self._pause()  # the batch grows no further: TCP is not read, UDP is dropped
            return
        self._batch = _Batch()

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            for transport in self._tcp:
                transport.pause_reading()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            for transport in self._tcp:
                transport.resume_reading()
            self._hand_on()

    def _flush_loop(self) -> None:
        metrics.name_os_thread()
        while True:
            batch = self._ready.get()
            if batch is None:
                return
            if self._loop is not None and self._paused:
                self._loop.call_soon_threadsafe(self._resume)
            try:
                self._submit(batch)
            except Exception:  # a defect must cost its batch, not the listener
                metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc(len(batch.messages))
                log.exception("syslog: %d messages not stored", len(batch.messages))

    def _submit(self, batch: _Batch) -> None:
        records = parse_messages(pa.array(batch.messages, pa.binary()), refused=batch.refused)
        metrics.EVENTS_RECEIVED.labels(component=COMPONENT).inc(len(records))
        metrics.BYTES_RECEIVED.labels(component=COMPONENT).inc(batch.bytes)
        while True:
            try:
                future = self.intake.submit(records, len(records), SOURCE)
                break
            except Overloaded as exc:
                time.sleep(exc.retry_after_s / 4)
            except ShuttingDown:
                metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc(len(records))
                log.warning("syslog: %d messages not stored, the pipeline is shutting down", len(records))
                return
        future.add_done_callback(_count)
        self._outstanding = [f for f in self._outstanding if not f.done()] + [future]


def _count(future: Future[IngestResult]) -> None:
    if future.exception() is not None:
        metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc()
        log.error("syslog batch not stored: %s", future.exception())
        return
    result = future.result()
    metrics.EVENTS_SENT.labels(component=COMPONENT).inc(result.accepted)
    metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc(result.rejected)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer):
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.server.allowed(addr):
            metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc()
            return
        self.server.received(data.rstrip(b"\n\r\0"), datagram=True)


class _TcpFraming(asyncio.Protocol):
    """RFC 6587 framing, chosen by a connection's first byte: a digit is octet counting
    (``LEN SP MSG``), anything else messages ended by LF or NUL."""

    def __init__(self, server: SyslogServer):
        self.server = server
        self.buffer = b""
        self.counted: bool | None = None
        self.skipping = 0  # bytes left of a counted frame that was too long
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.server.allowed(transport.get_extra_info("peername")):
            metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc()
            transport.close()
            return
        self.transport = transport
        self.server._tcp.add(transport)
        if self.server._paused:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._tcp.discard(self.transport)
        if self.buffer.strip(b"\n\r\0 "):
            self._message(self.buffer.rstrip(b"\n\r\0"))  # the last message of a sender that closed without an end
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.skipping:
            skipped = min(self.skipping, len(data))
            self.skipping -= skipped
            data = data[skipped:]
        buffer = self.buffer + data if self.buffer else data
        if self.counted is None and buffer:
            self.counted = buffer[:1].isdigit()
        self.buffer = self._counted(buffer) if self.counted else self._delimited(buffer)

    def _message(self, message: bytes) -> None:
        limit = self.server.config.max_message_bytes
        if len(message) > limit:
            self.server.received(message[:limit], f"syslog: message longer than {limit} bytes (its first {limit} "
                                                  "kept)")
        elif message:
            self.server.received(message)

    def _delimited(self, buffer: bytes) -> bytes:
        end = max(buffer.rfind(b"\n"), buffer.rfind(b"\0"))
        if end < 0:
            limit = self.server.config.max_message_bytes
            if len(buffer) > limit:  # a message without an end in sight: refuse it, skip to its end
                self._message(buffer)
                return b""
            return buffer
        for message in buffer[:end].replace(b"\0", b"\n").split(b"\n"):
            self._message(message.rstrip(b"\r"))
        return buffer[end + 1:]

    def _counted(self, buffer: bytes) -> bytes:
        position, size = 0, len(buffer)
        limit = self.server.config.max_message_bytes
        while position < size:
            space = buffer.find(b" ", position, position + 12)
            if space < 0:
                if size - position >= 12:
                    self._refuse_framing(buffer[position:])
                    return b""
                break
            digits = buffer[position:space]
            if not digits.isdigit():
                self._refuse_framing(buffer[position:])
                return b""
            length = int(digits)
            end = space + 1 + length
            if length > limit:
                self._message(buffer[space + 1:min(end, size)])
                self.skipping = max(0, end - size)
                position = min(end, size)
                continue
            if end > size:
                break
            self._message(buffer[space + 1:end])
            position = end
        return buffer[position:]

    def _refuse_framing(self, rest: bytes) -> None:
        """Octet counting broken mid-stream: what follows cannot be framed; it is a dead letter and
        the connection is closed, as RFC 6587 leaves a receiver no way to find the next frame."""
        limit = self.server.config.max_message_bytes
        self.server.received(rest[:limit], "syslog: octet-counted frame without a length")
        if self.transport is not None:
            self.transport.close()
