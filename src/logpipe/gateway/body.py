"""Request bodies of the ingest routes: read within a byte limit, decompressed within the same limit
(gzip, zstd), and turned into NDJSON whose every event is within the event limit.

A limit is checked as the bytes arrive, so a compressed bomb is refused after ``limit`` bytes of
output, in a fraction of a second and with no more memory than that.
"""

from __future__ import annotations

import threading
import zlib

import numpy as np
import orjson
import zstandard
from starlette.requests import Request

ENCODINGS = ("identity", "gzip", "x-gzip", "zstd")
_CHUNK = 1 << 16


class BodyTooLarge(Exception):
    pass


class InFlight:
    """Bytes of request bodies being read and handed on, bounded: a post past the bound is refused at
    once (429) instead of being held in memory beside the others. The pipeline's queue counts a payload
    once it is handed on, so the two bounds together keep memory in check however many clients post."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used and self.used + size > self.limit:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size


class UnsupportedEncoding(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The body as sent, refused past ``limit`` bytes (before reading it all when it says its length)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {int(declared):,} bytes, more than {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body of more than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decompressed(body: bytes, encoding: str, limit: int) -> bytes:
    """``body`` decoded by its ``Content-Encoding``; past ``limit`` bytes of output it is refused."""
    encoding = encoding.strip().lower() or "identity"
    if encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, limit)
    if encoding == "zstd":
        return _unzstd(body, limit)
    raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use one of {', '.join(ENCODINGS)}")


def _gunzip(body: bytes, limit: int) -> bytes:
    out, size, data = [], 0, body
    try:
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one per gzip member
            while data and not inflater.eof:
                piece = inflater.decompress(data, limit + 1 - size)
                size += len(piece)
                if size > limit:
                    raise BodyTooLarge(f"body of more than {limit:,} bytes once decompressed")
                out.append(piece)
                data = inflater.unconsumed_tail
            if not inflater.eof:
                raise ValueError("gzip body ends before its end")
            data = inflater.unused_data
    except zlib.error as exc:
        raise ValueError(f"not a valid gzip body: {exc}") from exc
    return b"".join(out)


def _unzstd(body: bytes, limit: int) -> bytes:
    out, size = [], 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
        while piece := reader.read(_CHUNK):
            size += len(piece)
            if size > limit:
                raise BodyTooLarge(f"body of more than {limit:,} bytes once decompressed")
            out.append(piece)
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a valid zstd body: {exc}") from exc
    return b"".join(out)


def to_ndjson(body: bytes) -> bytes:
    """Any accepted body shape (a JSON object, a JSON array, NDJSON) as NDJSON ending in a newline;
    raises ValueError when unusable."""
    # a body already in shape (content from its first byte to one final newline) is handed on as it
    # came: stripping and joining copied it twice, and several copies of each large post in flight
    # were most of the gateway's memory
    in_shape = body[-1:] == b"\n" and not body[:1].isspace() and not body[-2:-1].isspace()
    text = body if in_shape else body.strip()
    if not text:
        raise ValueError("empty body")
    if text[:1] == b"[":
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON array: {exc}") from exc
        if not isinstance(items, list):
            raise ValueError("invalid JSON array")
        lines = []
        for index, item in enumerate(items):
            try:
                lines.append(orjson.dumps(item) + b"\n")
            except orjson.JSONEncodeError as exc:  # nested past orjson's 255 levels
                raise ValueError(f"item {index}: {exc}") from exc
        return b"".join(lines)
    if text[:1] == b"{":
        try:
            single = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NDJSON: more than one document
        else:
            return orjson.dumps(single) + b"\n"
    return text if in_shape else text + b"\n"


_IS_CONTENT = np.ones(256, dtype=bool)
_IS_CONTENT[list(b" \t\n\r\x0b\x0c")] = False  # what bytes.strip() strips


def line_stats(ndjson: bytes) -> tuple[int, int, int]:
    """(lines holding more than whitespace, position of the longest line among all lines, its length in
    bytes) of an NDJSON document ending in a newline: the record count and the largest event, in one
    pass over the line ends."""
    data = np.frombuffer(ndjson, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if not len(ends):
        return 0, 0, len(data)
    lengths = np.diff(ends, prepend=-1) - 1
    longest = int(np.argmax(lengths))
    starts = ends - lengths
    filled = lengths > 0
    if _IS_CONTENT[data[starts[filled]]].all():
        # every line that is not empty begins with content, so holds content: no pass over every byte
        count = int(np.count_nonzero(filled))
    else:
        count = int(np.count_nonzero(np.logical_or.reduceat(_IS_CONTENT[data], starts)))
    return count, longest, int(lengths[longest])


def content_lines(payload: bytes) -> list[bytes]:
    """The lines of an NDJSON payload that hold more than whitespace, as they came. A line of
    whitespace only is rare: checking each line's first bytes in C, and stripping only then,
    spares a Python call per line."""
    lines = payload.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    if all(lines) and not any(map(bytes.isspace, lines)):
        return lines
    return [line for line in lines if line.strip()]
