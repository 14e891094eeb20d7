"""Lines of a log file to logpipe's columns, a chunk at a time.

- ``nginx``: the combined format (``$remote_addr - $remote_user [$time_local] "$request" $status
  $body_bytes_sent "$http_referer" "$http_user_agent"``), or Apache's common format without the last
  two, optionally followed by ``$request_time`` (seconds, bare or as ``rt=``). client_ip, user_id
  (the remote user), ts, method, endpoint (the path), status, bytes (``-`` is 0, as Apache writes
  no bytes), latency_ms; the protocol, query string, referer, user agent, and anything after the
  known fields go to attributes. A line that is not one is a dead letter.
- ``plain``: the line (or a record of several lines) is the message as written; the level is the
  first level word of its first line (``WARNING`` as WARN, ``CRITICAL`` as FATAL, ...; none: INFO,
  or ERROR for a record holding a stack trace); its time is a leading ISO 8601 time (in the
  source's zone when it has none), else the time it was read; its kind ``app_error`` for an error
  or a stack trace, else ``system``.
- ``json``: lines of logpipe's event JSON; they are not parsed here, but by the pipeline.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.events import TS_TYPE
from logpipe.sources.files import combined
from logpipe.sources.text import as_text, empty_to_null, groups, reason_column, string_map
from logpipe.transport.intake import Records

NGINX_SERVICE = "nginx"
_QUOTED = r'"(?P<{name}>(?:[^"\\]|\\.)*)"'
_COMBINED = (r"^(?P<client_ip>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] " + _QUOTED.format(name="request")
             + r" (?P<status>\d{3}) (?P<bytes>\d+|-)(?: " + _QUOTED.format(name="referer") + " "
             + _QUOTED.format(name="agent") + r")?(?: (?:rt=)?(?P<rt>\d+(?:\.\d+)?))?(?P<rest>.*)$")
_REQUEST = r"^(?P<method>[A-Z]{1,16}) (?P<path>[^?\s]*)(?:\?(?P<query>\S*))?(?: (?P<protocol>[A-Z]+/[0-9.]+))?$"
_LEVEL = (r"^[^\n]{0,200}?\b(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|CRIT|FATAL|"
          r"PANIC|EMERG)\b")
_TRACE = r"(?m)(^Traceback \(most recent call last\):|^\s+at \S+\(.*\)$|^goroutine \d+ \[|^panic: |^Caused by: )"
_LEADING_TIME = r"^\[?(?P<time>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)(?P<zone>Z|[+-]\d{2}:?\d{2})?\b"
_LEVEL_WORDS = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL", "PANIC": "FATAL",
                "EMERG": "FATAL", "TRACE": "DEBUG", "NOTICE": "INFO"}


def _each_distinct(column: pa.Array, convert) -> pa.Array:
    """``convert`` of each distinct value, taken for every row: the lines of a chunk share a few
    seconds, and strptime of a million times cost a seventh of the parse."""
    encoded = pc.dictionary_encode(column)
    return convert(encoded.dictionary).take(encoded.indices)


def nginx_records(lines: pa.Array, service: str = NGINX_SERVICE) -> Records:
    text, raw, bad = as_text(lines, "nginx")
    n = len(text)
    line, _ = combined.fields(text)  # what groups(text, _COMBINED) finds, in a fraction of its time
    matched = line["status"].is_valid().to_numpy(zero_copy_only=False)
    valid_text = text.is_valid().to_numpy(zero_copy_only=False)
    bad += [(int(i), "nginx: not a combined or common access log line")
            for i in np.flatnonzero(~matched & valid_text)]
    ts = _each_distinct(line["time"], lambda times: pc.strptime(times, format="%d/%b/%Y:%H:%M:%S %z", unit="ms",
                                                                 error_is_null=True))
    unreadable = pc.and_(pc.is_null(ts), line["time"].is_valid()).to_numpy(zero_copy_only=False)
    bad += [(int(i), "nginx: time is not dd/Mon/yyyy:HH:MM:SS +zone") for i in np.flatnonzero(unreadable)]
    request = groups(line["request"], _REQUEST)
    # a request line that is not METHOD TARGET PROTOCOL (a probe's garbage, "-") is kept whole
    odd_request = pc.and_(pc.is_null(request["method"]), line["request"].is_valid())
    seconds = pc.cast(empty_to_null(line["rt"]), pa.float64())
    table = pa.table({
        "ts": pc.cast(ts, TS_TYPE),
        "service": pc.if_else(pa.array(matched), pa.scalar(service), None),
        "kind": pc.if_else(pa.array(matched), pa.scalar("request"), None),
        "method": request["method"],
        "endpoint": request["path"],
        "status": pc.cast(line["status"], pa.int64()),
        "bytes": pc.cast(pc.if_else(pc.equal(line["bytes"], "-"), "0", line["bytes"]), pa.int64()),
        "latency_ms": pc.multiply(seconds, 1000.0),
        "client_ip": line["client_ip"],
        "user_id": empty_to_null(line["user"], "-"),
        "attributes": string_map(n, {
            "protocol": request["protocol"],
            "query": empty_to_null(request["query"]),
            "request": pc.if_else(odd_request, line["request"], None),
            "referer": _nil(line["referer"]),
            "user_agent": _nil(line["agent"]),
            "extra": empty_to_null(pc.utf8_trim_whitespace(line["rest"])),
        }),
    })
    return Records(table, raw, reason_column(n, bad))


def _nil(column: pa.Array) -> pa.Array:
    """Null for a field the format leaves out (empty) or writes as ``-``."""
    return empty_to_null(empty_to_null(column), "-")


def plain_records(lines: pa.Array, service: str, utc_offset_s: int, read_ms: int | None = None) -> Records:
    """``lines``: one record each (a multi-line record joined by newlines)."""
    text, raw, bad = as_text(lines, "file")
    n = len(text)
    read_ms = int(time.time() * 1000) if read_ms is None else read_ms
    level = pc.utf8_upper(groups(text, _LEVEL)["level"])
    for word, canonical in _LEVEL_WORDS.items():
        level = pc.if_else(pc.equal(level, word), canonical, level)
    traced = pc.match_substring_regex(text, _TRACE)
    level = pc.coalesce(level, pc.if_else(traced, pa.scalar("ERROR"), pa.scalar("INFO")))
    leading = groups(text, _LEADING_TIME)
    stamp = pc.replace_substring(pc.replace_substring(leading["time"], " ", "T"), ",", ".")
    sign = "-" if utc_offset_s < 0 else "+"
    local_zone = f"{sign}{abs(utc_offset_s) // 3600:02d}:{abs(utc_offset_s) % 3600 // 60:02d}"
    zone = pc.coalesce(empty_to_null(leading["zone"]), pa.scalar(local_zone))
    read = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(read_ms // 1000)) + f".{read_ms % 1000:03d}Z"
    ts = pc.coalesce(pc.binary_join_element_wise(stamp, zone, ""), pa.scalar(read))
    table = pa.table({
        "ts": ts,
        "service": pc.if_else(text.is_valid(), pa.scalar(service), None),
        "kind": pc.if_else(pc.or_(traced, pc.is_in(level, pa.array(["ERROR", "FATAL"]))), pa.scalar("app_error"),
                           pa.scalar("system")),
        "level": level,
        "message": text,
        "attributes": string_map(n, {}),
    })
    return Records(table, raw, reason_column(n, bad))


def joined_records(lines: pa.Array, start_pattern: str) -> pa.Array:
    """Lines joined by newlines into records, each beginning at a line that matches ``start_pattern``;
    the lines before the first such line make a record of their own."""
    n = len(lines)
    if n == 0:
        return lines
    text = lines if pa.types.is_string(lines.type) else pc.cast(lines, pa.binary())
    starts = pc.fill_null(pc.match_substring_regex(text, start_pattern), False).to_numpy(zero_copy_only=False)
    starts[0] = True
    first = np.flatnonzero(starts)
    offsets = np.append(first, n).astype(np.int32)
    newline = pa.scalar("\n" if pa.types.is_string(text.type) else b"\n", text.type)
    records = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), text), newline)
    return records


def as_records(parser: str, lines: pa.Array, service: str, file_stem: str, utc_offset_s: int) -> Records:
    """``service`` empty: ``nginx`` for access logs, else the file's name without its extensions."""
    if parser == "nginx":
        return nginx_records(lines, service or NGINX_SERVICE)
    return plain_records(lines, service or file_stem, utc_offset_s)
