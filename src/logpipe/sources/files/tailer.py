"""The file source: follows the files its globs name as they grow, rotate and go, and hands their
complete lines on in chunks.

A file is known by a fingerprint of its first line (at most ``fingerprint_bytes``), as Vector's file
source and the OpenTelemetry filelog receiver know theirs, so:

- rotation by rename keeps its place: the same fingerprint under a new name (or, once its name no
  longer matches, through the descriptor still open, until its end);
- rotation by copytruncate is told apart: the copy carries the old fingerprint, and reading goes on
  in it from the same place, while the truncated file, with a new first line, is a new file read from
  its beginning. (Lines written between logrotate's copy and its truncation are lost; that is
  copytruncate's own gap.)

Each chunk is a byte range ``[start, end)`` of whole lines (whole records with ``multiline_start``),
handed on under the idempotency key ``file:<fingerprint>:<start>-<end>`` after the range is written
to the checkpoints; the file's offset moves only when the engine has acknowledged the range. A crash
at any point makes the next run hand the same ranges on again, which the store keeps once.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from logpipe import metrics
from logpipe.sources.files.checkpoints import Checkpoints, Position
from logpipe.sources.files.config import FileSourceConfig
from logpipe.sources.files.parse import as_records, joined_records
from logpipe.transport.intake import IngestResult, Intake, KeyReused, Overloaded, Records, ShuttingDown

log = logging.getLogger(__name__)
COMPONENT = "file"
SOURCE = "file"
MAX_IN_FLIGHT = 4  # chunks per file handed on and not yet acknowledged
OVERSIZED_KEPT = 64 << 10  # what a dead letter keeps of a line longer than a chunk
RETRY_S = 1.0


@dataclass
class _Chunk:
    start: int
    end: int
    payload: bytes | Records
    events: int
    future: Future[IngestResult] | None = None
    failed_at: float = 0.0


@dataclass
class _Followed:
    fingerprint: str
    path: str
    inode: tuple[int, int]
    fd: int
    offset: int  # handed on up to here
    acked: int  # acknowledged up to here
    resend: deque[tuple[int, int]] = field(default_factory=deque)  # ranges of a run that ended before their ack
    in_flight: deque[_Chunk] = field(default_factory=deque)
    seen_size: int = -1
    grew_at: float = field(default_factory=time.monotonic)
    gone_since: float | None = None


class FileSource:
    def __init__(self, intake: Intake, config: FileSourceConfig, state_dir: Path):
        self.intake = intake
        self.config = config
        self.checkpoints = Checkpoints(state_dir / f"{config.name}.json")
        self.followed: dict[str, _Followed] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_scan = True
        self._offset_s = _utc_offset_s(config.timezone)
        metrics.register_component(COMPONENT)

    def start(self) -> FileSource:
        self._thread = threading.Thread(target=self._run, name=f"logpipe-files-{self.config.name}", daemon=True)
        self._thread.start()
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(1)
        log.info("file source %s following %s", self.config.name, ", ".join(self.config.include))
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop reading, and wait (bounded) for what was handed on, so its checkpoint moves."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        metrics.COMPONENT_UP.labels(component=COMPONENT).set(0)

    @property
    def caught_up(self) -> bool:
        """Every followed file acknowledged to its current end."""
        for followed in list(self.followed.values()):
            try:
                if followed.acked < os.fstat(followed.fd).st_size or followed.in_flight:
                    return False
            except OSError:
                continue
        return True

    # the loop ------------------------------------------------------------------------------------
    def _run(self) -> None:
        metrics.name_os_thread()
        while not self._stop.is_set():
            try:
                self._scan()
                progressed = any([self._advance(followed) for followed in list(self.followed.values())])
                self._let_go()
            except Exception:  # a defect: logged, and the next round starts over from the checkpoints
                log.exception("file source %s", self.config.name)
                progressed = False
            metrics.FILES_FOLLOWED.labels(component=COMPONENT).set(len(self.followed))
            if not progressed:
                self._idle()
        self._drain()

    def _idle(self) -> None:
        """Until the next round: the first acknowledgement of a chunk in flight (a full pipeline moves
        on as soon as the engine answers, not a poll interval later), else the poll interval."""
        pending = [chunk.future for followed in self.followed.values() for chunk in followed.in_flight
                   if chunk.future is not None and not chunk.future.done()]
        if pending:
            wait(pending, timeout=self.config.poll_interval_s, return_when=FIRST_COMPLETED)
        else:
            self._stop.wait(self.config.poll_interval_s)

    def _drain(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        for followed in self.followed.values():
            while followed.in_flight and time.monotonic() < deadline:
                chunk = followed.in_flight[0]
                try:
                    chunk.future.result(max(0.0, deadline - time.monotonic()))
                except Exception:
                    break  # not acknowledged: the next run hands the range on again
                self._acknowledged(followed)
        for followed in self.followed.values():
            os.close(followed.fd)
        self.followed.clear()

    def _scan(self) -> None:
        found: dict[str, tuple[str, tuple[int, int], int]] = {}
        for path in self._paths():
            try:
                stat = os.stat(path)
            except OSError:
                continue
            inode = (stat.st_dev, stat.st_ino)
            fingerprint = self._fingerprint(path)
            if fingerprint is not None and fingerprint not in found:
                found[fingerprint] = (path, inode, stat.st_size)
        first_scan, self._first_scan = self._first_scan, False
        for fingerprint, (path, inode, size) in found.items():
            followed = self.followed.get(fingerprint)
            if followed is None:
                self._follow(fingerprint, path, inode, size, first_scan)
            elif followed.inode != inode:
                self._moved(followed, path, inode)
            else:
                followed.path, followed.gone_since = path, None
        for fingerprint, followed in self.followed.items():
            if fingerprint not in found and followed.gone_since is None:
                followed.gone_since = time.monotonic()

    def _paths(self) -> list[str]:
        paths: set[str] = set()
        for pattern in self.config.include:
            paths.update(glob.glob(os.path.expanduser(pattern), recursive=True))
        return sorted(p for p in paths if os.path.isfile(p)
                      and not any(fnmatch(p, x) or fnmatch(os.path.basename(p), x) for x in self.config.exclude))

    def _fingerprint(self, path: str) -> str | None:
        """A hash of the first line (or the first ``fingerprint_bytes``); None until the file has one.
        Read again at every scan, so a file truncated or replaced under the same inode is seen as new."""
        try:
            with open(path, "rb") as file:
                head = file.read(self.config.fingerprint_bytes)
        except OSError:
            return None
        newline = head.find(b"\n")
        if newline < 0 and len(head) < self.config.fingerprint_bytes:
            return None
        return hashlib.sha256(head[:newline + 1] if newline >= 0 else head).hexdigest()[:16]

    def _follow(self, fingerprint: str, path: str, inode: tuple[int, int], size: int, first_scan: bool) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        position = self.checkpoints.get(fingerprint)
        if position is not None:
            resend = deque(sorted(position.pending))
            offset = max([position.offset, *(end for _, end in resend)])
            followed = _Followed(fingerprint, path, inode, fd, offset, position.offset, resend)
            log.info("file %s: resuming at byte %d%s", path, position.offset,
                     f", handing on {len(resend)} unacknowledged chunks again" if resend else "")
        else:
            start = size if first_scan and self.config.start_at == "end" else 0
            followed = _Followed(fingerprint, path, inode, fd, start, start)
            self.checkpoints.save(fingerprint, Position(path, start))
            log.info("file %s: following from byte %d", path, start)
        self.followed[fingerprint] = followed

    def _moved(self, followed: _Followed, path: str, inode: tuple[int, int]) -> None:
        """The file's content under another inode: the copy copytruncate made, when the inode followed
        was truncated or is gone; reading goes on in the copy."""
        try:
            size = os.fstat(followed.fd).st_size
        except OSError:
            size = -1
        if size >= followed.offset and followed.gone_since is None and os.path.exists(followed.path):
            return  # two files with the same first line: the one followed so far keeps its place
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        log.info("file %s: continues in %s (a copy of it) at byte %d", followed.path, path, followed.offset)
        os.close(followed.fd)
        followed.fd, followed.inode, followed.path, followed.gone_since = fd, inode, path, None

    def _settle_s(self) -> float:
        return max(1.0, self.config.multiline_timeout_s, 4 * self.config.poll_interval_s)

    def _gone_long_enough(self, followed: _Followed) -> bool:
        return followed.gone_since is not None and time.monotonic() - followed.gone_since >= self._settle_s()

    def _let_go(self) -> None:
        """Close files whose names are gone once they are read to their end and acknowledged."""
        for fingerprint, followed in list(self.followed.items()):
            if not self._gone_long_enough(followed) or followed.in_flight or followed.resend:
                continue
            try:
                if followed.offset < os.fstat(followed.fd).st_size:
                    continue  # still lines to read through the open descriptor
            except OSError:
                pass
            os.close(followed.fd)
            del self.followed[fingerprint]
            log.info("file %s: done (rotated away or deleted, and read to its end)", followed.path)

    # one file ------------------------------------------------------------------------------------
    def _advance(self, followed: _Followed) -> bool:
        """Take in acknowledgements, retry what failed, and hand the next chunk on; True if anything moved."""
        moved = self._take_acks(followed)
        if len(followed.in_flight) >= MAX_IN_FLIGHT:
            return moved
        if followed.resend:
            start, end = followed.resend[0]
            data = os.pread(followed.fd, end - start, start)
            if len(data) < end - start:  # truncated since: what is left of the range is gone
                log.warning("file %s: bytes %d-%d were truncated before they were acknowledged", followed.path,
                            start, end)
                followed.resend.popleft()
                return True
            if self._hand_on(followed, start, end, data, resent=True):
                followed.resend.popleft()
                return True
            return moved
        try:
            size = os.fstat(followed.fd).st_size
        except OSError:
            return moved
        if size < followed.offset:
            if not followed.in_flight:
                log.warning("file %s: truncated to %d bytes under byte %d; what was written after that byte and "
                            "before the truncation is lost", followed.path, size, followed.offset)
                followed.gone_since = followed.gone_since or time.monotonic()
            return moved
        if size != followed.seen_size:
            followed.seen_size, followed.grew_at = size, time.monotonic()
        if size == followed.offset:
            return moved
        data = os.pread(followed.fd, min(self.config.chunk_bytes, size - followed.offset), followed.offset)
        final = self._gone_long_enough(followed)  # no more will be written to it: a last line may lack its newline
        end = len(data) if final and followed.offset + len(data) >= size else data.rfind(b"\n") + 1
        if end == 0:
            if len(data) >= self.config.chunk_bytes:
                return self._oversized(followed) or moved
            return moved  # a line still being written
        data = data[:end]
        lines = _lines(data)
        if self.config.multiline_start:
            lines = joined_records(lines, self.config.multiline_start)
            growing = (followed.offset + len(data) >= size and not final and len(data) < self.config.chunk_bytes
                       and time.monotonic() - followed.grew_at < self.config.multiline_timeout_s)
            if growing:  # the last record may go on in lines not yet written: it waits, up to the timeout
                held = len(lines[len(lines) - 1].as_py()) + 1
                if held >= len(data):
                    return moved
                data, lines = data[:len(data) - held], lines.slice(0, len(lines) - 1)
        return self._hand_on(followed, followed.offset, followed.offset + len(data), data, lines) or moved

    def _hand_on(self, followed: _Followed, start: int, end: int, data: bytes, lines: pa.Array | None = None,
                 resent: bool = False) -> bool:
        if lines is None:
            lines = _lines(data)
            if self.config.multiline_start:
                lines = joined_records(lines, self.config.multiline_start)
        payload: bytes | Records
        if self.config.parser == "json":
            payload, events = data, len(lines)
        else:
            if data.find(b"\r") >= 0:
                lines = _without_cr(lines)
            payload = as_records(self.config.parser, lines, self.config.service, _stem(followed.path), self._offset_s)
            events = len(payload)
        chunk = _Chunk(start, end, payload, events)
        if not resent:
            position = Position(followed.path, followed.acked, [(c.start, c.end) for c in followed.in_flight]
                                + [(start, end)])
            self.checkpoints.save(followed.fingerprint, position)  # before it is handed on: a crash resends it
        if not self._submit(followed, chunk):
            if not resent:
                self.checkpoints.save(followed.fingerprint, Position(
                    followed.path, followed.acked, [(c.start, c.end) for c in followed.in_flight]))
            return False
        followed.in_flight.append(chunk)
        followed.offset = max(followed.offset, end)
        metrics.EVENTS_RECEIVED.labels(component=COMPONENT).inc(events)
        metrics.BYTES_RECEIVED.labels(component=COMPONENT).inc(end - start)
        return True

    def _submit(self, followed: _Followed, chunk: _Chunk) -> bool:
        key = f"file:{followed.fingerprint}:{chunk.start}-{chunk.end}"
        try:
            chunk.future = self.intake.submit(chunk.payload, chunk.events, SOURCE, key=key)
            return True
        except Overloaded as exc:
            self._stop.wait(min(exc.retry_after_s, 1.0))
        except ShuttingDown:
            self._stop.wait(RETRY_S)
        except KeyReused as exc:  # the file changed under a range handed on before: a defect to see
            log.error("file %s: %s", followed.path, exc)
            self._stop.wait(RETRY_S)
        except Exception:  # a defect: the lines stay on disk and are handed on again
            log.exception("file %s: lines %d-%d not handed on", followed.path, chunk.start, chunk.end)
            self._stop.wait(RETRY_S)
        return False

    def _take_acks(self, followed: _Followed) -> bool:
        moved = False
        for chunk in list(followed.in_flight):
            if chunk.future is None or not chunk.future.done():
                continue
            error = chunk.future.exception()
            if error is None:
                continue
            if not chunk.failed_at:
                log.warning("file %s: bytes %d-%d not stored (%s); handing them on again", followed.path,
                            chunk.start, chunk.end, error)
                chunk.failed_at = time.monotonic()
            if time.monotonic() - chunk.failed_at >= RETRY_S and self._submit(followed, chunk):
                chunk.failed_at = 0.0
        while followed.in_flight and followed.in_flight[0].future.done() \
                and followed.in_flight[0].future.exception() is None:
            self._acknowledged(followed)
            moved = True
        return moved

    def _acknowledged(self, followed: _Followed) -> None:
        chunk = followed.in_flight.popleft()
        result = chunk.future.result()
        metrics.EVENTS_SENT.labels(component=COMPONENT).inc(result.accepted)
        metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc(result.rejected)
        followed.acked = chunk.end
        self.checkpoints.save(followed.fingerprint, Position(
            followed.path, followed.acked, [(c.start, c.end) for c in followed.in_flight]))

    def _oversized(self, followed: _Followed) -> bool:
        """A line longer than a chunk: a dead letter holding its first bytes, and reading goes on after it."""
        start = followed.offset
        position = start + self.config.chunk_bytes
        while True:
            block = os.pread(followed.fd, 1 << 20, position)
            if not block:
                return False  # its end is not written yet
            newline = block.find(b"\n")
            if newline >= 0:
                end = position + newline + 1
                break
            position += len(block)
        head = os.pread(followed.fd, OVERSIZED_KEPT, start)
        reason = f"file: line of {end - start - 1:,} bytes, longer than a chunk ({self.config.chunk_bytes:,}); its " \
                 f"first {OVERSIZED_KEPT:,} bytes kept"
        records = Records(pa.table({"message": pa.array([None], pa.string())}),
                          pa.array([head.decode("utf-8", "backslashreplace")]), pa.array([reason]))
        chunk = _Chunk(start, end, records, 1)
        self.checkpoints.save(followed.fingerprint, Position(
            followed.path, followed.acked, [(c.start, c.end) for c in followed.in_flight] + [(start, end)]))
        if not self._submit(followed, chunk):
            return False
        followed.in_flight.append(chunk)
        followed.offset = end
        return True


def _lines(data: bytes) -> pa.Array:
    """The lines of ``data`` without their newlines (a last line without one too), as one Arrow array."""
    lines = pc.split_pattern(pa.array([data], pa.binary()), b"\n").flatten()
    return lines.slice(0, len(lines) - 1) if data.endswith(b"\n") else lines


def _without_cr(lines: pa.Array) -> pa.Array:
    """CRLF line ends as LF ones: the CR belongs to the line end, not to the text."""
    return pc.replace_substring_regex(lines, b"\r(\n|$)", b"\\1")


def _stem(path: str) -> str:
    name = os.path.basename(path)
    while "." in name[1:]:
        name = name.rsplit(".", 1)[0]
    return name or "file"


def _utc_offset_s(zone: str | None) -> int:
    if zone:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        offset = datetime.now(ZoneInfo(zone)).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0
    return time.localtime().tm_gmtoff

