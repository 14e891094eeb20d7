"""An OTLP/protobuf ``ExportLogsServiceRequest`` read from its bytes in machine code (numba) into
spans and numbers, for ``mapping.records_of_wire`` to turn into columns: the generated protobuf
classes cost about 2 us per attribute read from Python, most of the receiver's CPU.

Only what the columns need is read; a request with anything else in the values that become text (a
double, an array, a key-value list or bytes as an attribute value or body), a singular message field
sent twice (which protobuf merges), a group, or bytes that do not parse is not read here
(``scan`` answers None) and goes to the generated classes instead, so both readers agree.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from logpipe.sources.spans import strings

NONE, STRING, BOOL, INT = 0, 1, 2, 3  # an AnyValue's kind, as far as this reader goes
RESOURCE, SCOPE, RECORD = 0, 1, 2  # the owner of an attribute
# per record: resource, scope, time, observed time, severity number, then (start, length) of severity
# text, body, trace id, span id and event name, the body's kind and its integer
_R_RES, _R_SCOPE, _R_TIME, _R_OBSERVED, _R_SEVERITY = range(5)
_R_SEV_TEXT, _R_BODY, _R_TRACE, _R_SPAN, _R_EVENT = 5, 7, 9, 11, 13
_R_BODY_KIND, _R_BODY_INT, _R_FIELDS = 15, 16, 17
# per attribute: owner kind, owner index, key (start, length), value kind, value (start, length), integer
_A_OWNER_KIND, _A_OWNER, _A_KEY, _A_KIND, _A_VALUE, _A_INT, _A_FIELDS = 0, 1, 2, 4, 5, 7, 8
# per scope: resource, name (start, length), version (start, length)
_S_RES, _S_NAME, _S_VERSION, _S_FIELDS = 0, 1, 3, 5


@njit(cache=True, nogil=True)
def _varint(data: np.ndarray, at: int, end: int) -> tuple[np.uint64, int]:
    value = np.uint64(0)
    shift = 0
    while at < end and shift < 64:
        byte = data[at]
        at += 1
        value |= np.uint64(byte & 0x7F) << np.uint64(shift)
        if byte < 0x80:
            return value, at
        shift += 7
    return value, -1


@njit(cache=True, nogil=True)
def _field(data: np.ndarray, at: int, end: int) -> tuple[int, int, int, int, int]:
    """(field number, wire type, start, stop, next position) of the field at ``at``: for a
    length-delimited field its bytes, else where its value starts and ends. The next position is -1
    when the bytes do not parse (a group, or a length past ``end``)."""
    tag, at = _varint(data, at, end)
    if at < 0:
        return 0, 0, 0, 0, -1
    field, wire = np.int64(tag >> np.uint64(3)), np.int64(tag & np.uint64(7))
    if wire == 0:
        stop = _varint(data, at, end)[1]
    elif wire == 1:
        stop = at + 8 if at + 8 <= end else -1
    elif wire == 5:
        stop = at + 4 if at + 4 <= end else -1
    elif wire == 2:
        length, at = _varint(data, at, end)
        stop = at + np.int64(length) if at >= 0 and at + np.int64(length) <= end else -1
    else:
        stop = -1
    return field, wire, at, stop, stop


@njit(cache=True, nogil=True)
def _fixed64(data: np.ndarray, at: int) -> np.uint64:
    value = np.uint64(0)
    for i in range(8):
        value |= np.uint64(data[at + i]) << np.uint64(8 * i)
    return value


@njit(cache=True, nogil=True)
def _any_value(data: np.ndarray, at: int, end: int, out: np.ndarray, row: int, kind_at: int, span_at: int,
               int_at: int) -> bool:
    """An AnyValue of kind none, string, bool or int into ``out[row]`` (the last one set, as protobuf
    reads a oneof); False for any other kind, rendered by the generated classes."""
    out[row, kind_at] = NONE
    while at < end:
        field, wire, start, stop, at = _field(data, at, end)
        if at < 0 or 4 <= field <= 7:
            return False
        if field == 1 and wire == 2:
            out[row, kind_at], out[row, span_at], out[row, span_at + 1] = STRING, start, stop - start
        elif (field == 2 or field == 3) and wire == 0:
            value = _varint(data, start, stop)[0]
            out[row, kind_at] = BOOL if field == 2 else INT
            out[row, int_at] = np.int64(value != 0) if field == 2 else np.int64(value)
    return True


@njit(cache=True, nogil=True)
def _key_value(data: np.ndarray, at: int, end: int, out: np.ndarray, row: int) -> bool:
    out[row, _A_KEY], out[row, _A_KEY + 1], out[row, _A_KIND] = at, 0, NONE
    seen_value = False
    while at < end:
        field, wire, start, stop, at = _field(data, at, end)
        if at < 0:
            return False
        if field == 1 and wire == 2:
            out[row, _A_KEY], out[row, _A_KEY + 1] = start, stop - start
        elif field == 2 and wire == 2:
            if seen_value or not _any_value(data, start, stop, out, row, _A_KIND, _A_VALUE, _A_INT):
                return False  # a value sent twice is merged by protobuf
            seen_value = True
    return True


@njit(cache=True, nogil=True)
def _attribute(data: np.ndarray, start: int, stop: int, attributes: np.ndarray, scratch: np.ndarray, n_attr: int,
               write: bool, owner_kind: int, owner: int) -> bool:
    """The KeyValue in ``data[start:stop]`` as attribute ``n_attr`` of its owner."""
    row, out = (n_attr, attributes) if write else (0, scratch)
    out[row, _A_OWNER_KIND], out[row, _A_OWNER] = owner_kind, owner
    return _key_value(data, start, stop, out, row)


@njit(cache=True, nogil=True)
def _walk(data: np.ndarray, records: np.ndarray, attributes: np.ndarray, scopes: np.ndarray,
          write: bool) -> tuple[int, int, int, int]:
    """(resources, scopes, records, attributes) of the request, written into the arrays when ``write``
    (else into a scratch row, to count and check); (-1, ...) when this reader does not read it."""
    n_res, n_scope, n_rec, n_attr = 0, 0, 0, 0
    record_scratch = np.zeros((1, _R_FIELDS), dtype=np.int64)
    attribute_scratch = np.zeros((1, _A_FIELDS), dtype=np.int64)
    scope_scratch = np.zeros((1, _S_FIELDS), dtype=np.int64)
    failed = (-1, 0, 0, 0)
    at, end = 0, len(data)
    while at < end:  # ExportLogsServiceRequest
        field, wire, res_at, res_end, at = _field(data, at, end)
        if at < 0:
            return failed
        if field != 1 or wire != 2:
            continue
        resource, n_res = n_res, n_res + 1
        seen_resource = False
        while res_at < res_end:  # ResourceLogs
            field, wire, part_at, part_end, res_at = _field(data, res_at, res_end)
            if res_at < 0 or (field == 1 and wire == 2 and seen_resource):
                return failed
            if wire != 2 or field > 2:
                continue
            if field == 1:  # Resource
                seen_resource = True
                while part_at < part_end:
                    field, wire, start, stop, part_at = _field(data, part_at, part_end)
                    if part_at < 0:
                        return failed
                    if field == 1 and wire == 2:
                        if not _attribute(data, start, stop, attributes, attribute_scratch, n_attr, write, RESOURCE,
                                          resource):
                            return failed
                        n_attr += 1
                continue
            scope, n_scope = n_scope, n_scope + 1  # ScopeLogs
            at_scope, scope_out = (scope, scopes) if write else (0, scope_scratch)
            scope_out[at_scope, _S_RES] = resource
            scope_out[at_scope, _S_NAME + 1] = scope_out[at_scope, _S_VERSION + 1] = 0
            seen_scope = False
            while part_at < part_end:
                field, wire, inner_at, inner_end, part_at = _field(data, part_at, part_end)
                if part_at < 0 or (field == 1 and wire == 2 and seen_scope):
                    return failed
                if wire != 2 or field > 2:
                    continue
                if field == 1:  # InstrumentationScope
                    seen_scope = True
                    while inner_at < inner_end:
                        field, wire, start, stop, inner_at = _field(data, inner_at, inner_end)
                        if inner_at < 0:
                            return failed
                        if field == 3 and wire == 2:
                            if not _attribute(data, start, stop, attributes, attribute_scratch, n_attr, write, SCOPE,
                                              scope):
                                return failed
                            n_attr += 1
                        elif (field == 1 or field == 2) and wire == 2:
                            slot = _S_NAME if field == 1 else _S_VERSION
                            scope_out[at_scope, slot], scope_out[at_scope, slot + 1] = start, stop - start
                    continue
                row = n_rec  # LogRecord
                n_rec += 1
                at_row, out = (row, records) if write else (0, record_scratch)
                out[at_row, :] = 0
                out[at_row, _R_RES], out[at_row, _R_SCOPE] = resource, scope
                seen_body = False
                while inner_at < inner_end:
                    field, wire, start, stop, inner_at = _field(data, inner_at, inner_end)
                    if inner_at < 0:
                        return failed
                    if (field == 1 or field == 11) and wire == 1:
                        out[at_row, _R_TIME if field == 1 else _R_OBSERVED] = np.int64(_fixed64(data, start))
                    elif field == 2 and wire == 0:
                        out[at_row, _R_SEVERITY] = np.int64(_varint(data, start, stop)[0])
                    elif field == 5 and wire == 2:
                        if seen_body or not _any_value(data, start, stop, out, at_row, _R_BODY_KIND, _R_BODY,
                                                       _R_BODY_INT):
                            return failed
                        seen_body = True
                    elif field == 6 and wire == 2:
                        if not _attribute(data, start, stop, attributes, attribute_scratch, n_attr, write, RECORD,
                                          row):
                            return failed
                        n_attr += 1
                    elif wire == 2 and (field == 3 or field == 9 or field == 10 or field == 12):
                        slot = _R_SEV_TEXT if field == 3 else _R_TRACE if field == 9 else \
                            _R_SPAN if field == 10 else _R_EVENT
                        out[at_row, slot], out[at_row, slot + 1] = start, stop - start
    return n_res, n_scope, n_rec, n_attr


def scan(body: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int] | None:
    """(data, records, attributes, scopes, resources) of the request's bytes, or None when this reader
    does not read it."""
    data = np.frombuffer(body, dtype=np.uint8)
    empty = np.zeros((0, 1), dtype=np.int64)
    n_res, n_scope, n_rec, n_attr = _walk(data, empty, empty, empty, False)
    if n_res < 0:
        return None
    records = np.zeros((n_rec, _R_FIELDS), dtype=np.int64)
    attributes = np.zeros((n_attr, _A_FIELDS), dtype=np.int64)
    scopes = np.zeros((n_scope, _S_FIELDS), dtype=np.int64)
    if _walk(data, records, attributes, scopes, True)[0] < 0:
        return None
    return data, records, attributes, scopes, n_res


def prepare() -> None:
    """Load the reader (on a fresh machine, compile it: a few seconds, then cached), so that the first
    request does not wait for it past its exporter's timeout. The receiver calls this as it starts."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="a")))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "s"
    scope_logs.scope.attributes.append(KeyValue(key="b", value=AnyValue(bool_value=True)))
    record = scope_logs.log_records.add(time_unix_nano=1, severity_number=9, trace_id=b"\x01" * 16)
    record.body.string_value = "m"
    record.attributes.append(KeyValue(key="i", value=AnyValue(int_value=-1)))
    scanned = scan(request.SerializeToString())
    assert scanned is not None
    strings(scanned[0], scanned[1][:, _R_TRACE], scanned[1][:, _R_TRACE + 1], as_hex=True)
