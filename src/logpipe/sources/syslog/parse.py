"""Syslog messages (RFC 5424, RFC 3164) to logpipe's columns, a batch at a time.

- ``PRI``: severity -> level (emerg, alert, crit: FATAL; err: ERROR; warning: WARN; notice, info:
  INFO; debug: DEBUG), the severity's and facility's names -> attributes ``severity`` and ``facility``;
- APP-NAME (RFC 3164: the tag) -> service, ``syslog`` when the message has none;
- HOSTNAME -> host;
- PROCID, MSGID -> attributes ``procid``, ``msgid``; each structured-data parameter ->
  attribute ``<SD-ID>.<name>``;
- TIMESTAMP -> ts; RFC 3164's, which has no year or zone, is read in the receiver's zone and the
  year that puts it nearest to now; a message without one (NILVALUE, or a bare ``<PRI>text`` as
  Python's SysLogHandler sends) takes the time it was received;
- MSG -> message, without RFC 5424's byte-order mark; kind is ``system``.

A message with no ``<PRI>`` or not valid UTF-8 is a dead letter with that reason; its text is kept.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.events import TS_TYPE
from logpipe.sources.text import as_text, empty_to_null, groups, reason_column, string_map
from logpipe.transport.intake import Records

DEFAULT_SERVICE = "syslog"
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
              "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
              "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
LEVEL_OF_SEVERITY = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")

_RFC5424 = (r"(?s)^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) "
            r"(?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$")
_RFC3164 = (r"(?s)^<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
            r"(?P<rest>.*)$")
_BARE = r"(?s)^<(?P<pri>\d{1,3})>(?P<rest>.*)$"
# a tag (RFC 3164's APP-NAME, up to 32 characters) with an optional [pid], then ':'
_TAG = r"(?s)^(?P<app>[^\s:\[\]]{1,48})(?:\[(?P<procid>[^\]\s]{1,128})\])?: ?(?P<msg>.*)$"
_SD_ELEMENT = re.compile(r'\[([^\s\]=]+)((?:\s+[^\s=\]]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')
# structured data as most senders write it: elements of parameters, single spaces, nothing escaped, no
# value that begins with a space (its '=" ' would read as the end of a parameter)
_SD_PLAIN = r'^(?:\[[^\s\]="\\]+(?: [^\s\]="\\]+="(?:[^"\\\] ][^"\\\]]*)?")*\])+$'
_BOM = "\ufeff"


def parse_messages(messages: pa.Array, received_ms: int | None = None,
                   refused: dict[int, str] | None = None) -> Records:
    """The messages as columns, with each one's text as it came (``raw``), and the reason of those
    that do not parse (``reasons``), or that the framing ``refused`` (position -> reason)."""
    received_ms = int(time.time() * 1000) if received_ms is None else received_ms
    text, raw, bad = as_text(messages, "syslog")
    bad = list((refused or {}).items()) + bad  # the framing's reason first
    n = len(text)
    full = groups(text, _RFC5424)
    is_5424 = full["pri"].is_valid()
    legacy = groups(pc.if_else(is_5424, None, text), _RFC3164)
    is_3164 = legacy["pri"].is_valid()
    bare = groups(pc.if_else(pc.or_(is_5424, is_3164), None, text), _BARE)
    has_pri = pc.or_(pc.or_(is_5424, is_3164), bare["pri"].is_valid())
    for i in np.flatnonzero(~has_pri.to_numpy(zero_copy_only=False) & text.is_valid().to_numpy(zero_copy_only=False)):
        bad.append((int(i), "syslog: not a syslog message (no <PRI> at its start)"))

    pri = pc.cast(pc.coalesce(full["pri"], legacy["pri"], bare["pri"]), pa.int32())
    out_of_range = pc.fill_null(pc.greater(pri, 191), False).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(out_of_range):
        bad.append((int(i), "syslog: PRI is more than 191"))
    pri = pc.if_else(pc.greater(pri, 191), None, pri)
    severity, facility = pc.bit_wise_and(pri, 7), pc.divide(pri, 8)

    rest = pc.coalesce(legacy["rest"], bare["rest"])
    tagged = groups(rest, _TAG)
    message = pc.coalesce(full["msg"], pc.if_else(tagged["msg"].is_valid(), tagged["msg"], rest))
    message = pc.replace_substring_regex(message, "^" + _BOM, "")
    nil = _nil_to_null
    service = pc.coalesce(nil(full["app"]), tagged["app"])
    service = pc.if_else(has_pri, pc.coalesce(service, pa.scalar(DEFAULT_SERVICE)), None)
    procid = pc.coalesce(nil(full["procid"]), empty_to_null(tagged["procid"]))
    received = pa.scalar(_iso(received_ms))
    ts = pc.coalesce(nil(full["ts"]), _legacy_times(legacy["ts"], received_ms), received)

    attributes = _attributes(n, {
        "facility": pc.take(pa.array(FACILITIES), facility),
        "severity": pc.take(pa.array(SEVERITIES), severity),
        "procid": procid,
        "msgid": nil(full["msgid"]),
    }, nil(full["sd"]))
    table = pa.table({
        "ts": ts,
        "service": service,
        "kind": pc.if_else(has_pri, pa.scalar("system"), None),
        "level": pc.take(pa.array(LEVEL_OF_SEVERITY), severity),
        "host": nil(pc.coalesce(full["host"], legacy["host"])),
        "message": message,
        "attributes": attributes,
    })
    return Records(table, raw, reason_column(n, bad))


def _nil_to_null(column: pa.Array) -> pa.Array:
    return empty_to_null(column, "-")


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _legacy_times(stamps: pa.Array, received_ms: int) -> pa.Array:
    """RFC 3164 times (``Oct 11 22:14:15``): local time in the year that puts them nearest to now."""
    if stamps.null_count == len(stamps):
        return pa.nulls(len(stamps), pa.string())
    offset_ms = time.localtime(received_ms / 1000).tm_gmtoff * 1000
    year = time.gmtime(received_ms / 1000).tm_year
    best = None
    for candidate in (year, year - 1, year + 1):
        local = pc.strptime(pc.binary_join_element_wise(str(candidate), stamps, " "), format="%Y %b %d %H:%M:%S",
                            unit="ms", error_is_null=True)
        utc_ms = pc.subtract(pc.cast(local, pa.int64()), offset_ms)
        if best is None:
            best = utc_ms
            continue
        closer = pc.less(pc.abs(pc.subtract(utc_ms, received_ms)), pc.abs(pc.subtract(best, received_ms)))
        best = pc.if_else(pc.fill_null(closer, False), utc_ms, best)
    return pc.strftime(pc.cast(best, TS_TYPE), format="%Y-%m-%dT%H:%M:%SZ")


def _attributes(n: int, columns: dict[str, pa.Array], structured: pa.Array) -> pa.Array:
    """The named columns and each structured-data parameter (``<SD-ID>.<name>``). Structured data in
    its plain form (single spaces, nothing escaped) is split as columns; the rest is read message by
    message."""
    plain = pc.fill_null(pc.match_substring_regex(structured, _SD_PLAIN), False).to_numpy(zero_copy_only=False)
    fast_rows, fast_keys, fast_values = _plain_parameters(np.flatnonzero(plain), structured.filter(pa.array(plain)))
    rows, keys, values = [], [], []
    others = structured.is_valid().to_numpy(zero_copy_only=False) & ~plain
    present = np.flatnonzero(others)
    for i, sd in zip(present, structured.filter(pa.array(others)).to_pylist(), strict=True):
        for element in _SD_ELEMENT.finditer(sd):
            for name, value in _SD_PARAM.findall(element.group(2)):
                rows.append(i)
                keys.append(f"{element.group(1)}.{name}")
                values.append(_SD_ESCAPE.sub(r"\1", value))
    return string_map(n, columns, (np.concatenate([fast_rows, np.asarray(rows, dtype=np.int64)]),
                                   pa.concat_arrays([fast_keys, pa.array(keys, pa.string())]),
                                   pa.concat_arrays([fast_values, pa.array(values, pa.string())])))


def _plain_parameters(rows: np.ndarray, structured: pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(row, key, value) of each parameter of structured data in its plain form, in order: elements
    split at "][", an element's id at its first space, parameters at '" ' (a value holds no quote)."""
    elements = pc.split_pattern(pc.utf8_slice_codeunits(structured, 1, -1), "][")
    element_rows = rows[pc.list_parent_indices(elements).to_numpy()]
    id_and_rest = pc.split_pattern(pc.list_flatten(elements), " ", max_splits=1)
    ids = pc.list_element(id_and_rest, 0)
    with_parameters = pc.greater(pc.list_value_length(id_and_rest), 1)
    rest = pc.list_element(pc.filter(id_and_rest, with_parameters), 1)
    element_of_rest = np.flatnonzero(with_parameters.to_numpy(zero_copy_only=False))
    parameters = pc.split_pattern(pc.utf8_slice_codeunits(rest, 0, -1), '" ')
    owner = element_of_rest[pc.list_parent_indices(parameters).to_numpy()]
    name_value = pc.split_pattern(pc.list_flatten(parameters), '="', max_splits=1)
    keys = pc.binary_join_element_wise(ids.take(pa.array(owner)), pc.list_element(name_value, 0), ".")
    return (element_rows[owner].astype(np.int64), pc.cast(keys, pa.string()),
            pc.cast(pc.list_element(name_value, 1), pa.string()))
