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
def _skip(data: np.ndarray, wire: int, at: int, end: int) -> int:
    """The position after a field of ``wire`` type; -1 for a group or bytes that run past ``end``."""
    if wire == 0:
        return _varint(data, at, end)[1]
    if wire == 1:
        return at + 8 if at + 8 <= end else -1
    if wire == 5:
        return at + 4 if at + 4 <= end else -1
    if wire == 2:
        length, at = _varint(data, at, end)
        if at < 0 or at + np.int64(length) > end:
            return -1
        return at + np.int64(length)
    return -1


@njit(cache=True, nogil=True)
def _fixed64(data: np.ndarray, at: int) -> np.uint64:
    value = np.uint64(0)
    for i in range(8):
        value |= np.uint64(data[at + i]) << np.uint64(8 * i)
    return value


@njit(cache=True, nogil=True)
def _any_value(data: np.ndarray, at: int, end: int, out: np.ndarray, row: int, kind_at: int, span_at: int,
               int_at: int) -> bool:
    """An AnyValue of kind none, string, bool or int into ``out[row]``; False for any other kind."""
    out[row, kind_at] = NONE
    while at < end:
        tag, at = _varint(data, at, end)
        if at < 0:
            return False
        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
        if field == 1 and wire == 2:
            length, at = _varint(data, at, end)
            if at < 0 or at + np.int64(length) > end:
                return False
            out[row, kind_at], out[row, span_at], out[row, span_at + 1] = STRING, at, np.int64(length)
            at += np.int64(length)
        elif field == 2 and wire == 0:
            value, at = _varint(data, at, end)
            out[row, kind_at], out[row, int_at] = BOOL, np.int64(value != 0)
        elif field == 3 and wire == 0:
            value, at = _varint(data, at, end)
            out[row, kind_at], out[row, int_at] = INT, np.int64(value)
        elif 4 <= field <= 7:
            return False  # double, array, kvlist, bytes: the generated classes render these
        else:
            at = _skip(data, wire, at, end)
        if at < 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _key_value(data: np.ndarray, at: int, end: int, attributes: np.ndarray, row: int, write: bool,
               scratch: np.ndarray) -> bool:
    seen_value = False
    if write:
        attributes[row, _A_KEY], attributes[row, _A_KEY + 1] = at, 0
        attributes[row, _A_KIND] = NONE
    while at < end:
        tag, at = _varint(data, at, end)
        if at < 0:
            return False
        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
        if wire == 2 and (field == 1 or field == 2):
            length, at = _varint(data, at, end)
            if at < 0 or at + np.int64(length) > end:
                return False
            if field == 1:
                if write:
                    attributes[row, _A_KEY], attributes[row, _A_KEY + 1] = at, np.int64(length)
            else:
                if seen_value:
                    return False
                seen_value = True
                if write and not _any_value(data, at, at + np.int64(length), attributes, row, _A_KIND, _A_VALUE,
                                            _A_INT):
                    return False
                if not write and not _any_value(data, at, at + np.int64(length), scratch, 0, _A_KIND, _A_VALUE,
                                                _A_INT):
                    return False
            at += np.int64(length)
        else:
            at = _skip(data, wire, at, end)
            if at < 0:
                return False
    return True


@njit(cache=True, nogil=True)
def _walk(data: np.ndarray, records: np.ndarray, attributes: np.ndarray, scopes: np.ndarray,
          write: bool) -> tuple[int, int, int, int]:
    """(resources, scopes, records, attributes) of the request, written into the arrays when ``write``;
    (-1, ...) when this reader does not read it."""
    n_res, n_scope, n_rec, n_attr = 0, 0, 0, 0
    scratch = np.zeros((1, _A_FIELDS), dtype=np.int64)  # where a count's values are read to be checked
    body_scratch = np.zeros((1, _R_FIELDS), dtype=np.int64)
    end = len(data)
    at = 0
    failed = (-1, 0, 0, 0)
    while at < end:
        tag, at = _varint(data, at, end)
        if at < 0:
            return failed
        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
        if not (field == 1 and wire == 2):
            at = _skip(data, wire, at, end)
            if at < 0:
                return failed
            continue
        length, at = _varint(data, at, end)
        if at < 0 or at + np.int64(length) > end:
            return failed
        res_end = at + np.int64(length)
        resource = n_res
        n_res += 1
        seen_resource = False
        while at < res_end:  # ResourceLogs
            tag, at = _varint(data, at, res_end)
            if at < 0:
                return failed
            field, wire = tag >> np.uint64(3), tag & np.uint64(7)
            if wire != 2 or (field != 1 and field != 2):
                at = _skip(data, wire, at, res_end)
                if at < 0:
                    return failed
                continue
            length, at = _varint(data, at, res_end)
            if at < 0 or at + np.int64(length) > res_end:
                return failed
            part_end = at + np.int64(length)
            if field == 1:  # Resource
                if seen_resource:
                    return failed
                seen_resource = True
                while at < part_end:
                    tag, at = _varint(data, at, part_end)
                    if at < 0:
                        return failed
                    field, wire = tag >> np.uint64(3), tag & np.uint64(7)
                    if field == 1 and wire == 2:
                        length, at = _varint(data, at, part_end)
                        if at < 0 or at + np.int64(length) > part_end:
                            return failed
                        if write:
                            attributes[n_attr, _A_OWNER_KIND], attributes[n_attr, _A_OWNER] = RESOURCE, resource
                        if not _key_value(data, at, at + np.int64(length), attributes, n_attr, write, scratch):
                            return failed
                        n_attr += 1
                        at += np.int64(length)
                    else:
                        at = _skip(data, wire, at, part_end)
                        if at < 0:
                            return failed
                continue
            scope = n_scope  # ScopeLogs
            n_scope += 1
            if write:
                scopes[scope, _S_RES] = resource
                scopes[scope, _S_NAME + 1] = 0
                scopes[scope, _S_VERSION + 1] = 0
            seen_scope = False
            while at < part_end:
                tag, at = _varint(data, at, part_end)
                if at < 0:
                    return failed
                field, wire = tag >> np.uint64(3), tag & np.uint64(7)
                if wire != 2 or (field != 1 and field != 2):
                    at = _skip(data, wire, at, part_end)
                    if at < 0:
                        return failed
                    continue
                length, at = _varint(data, at, part_end)
                if at < 0 or at + np.int64(length) > part_end:
                    return failed
                inner_end = at + np.int64(length)
                if field == 1:  # InstrumentationScope
                    if seen_scope:
                        return failed
                    seen_scope = True
                    while at < inner_end:
                        tag, at = _varint(data, at, inner_end)
                        if at < 0:
                            return failed
                        field, wire = tag >> np.uint64(3), tag & np.uint64(7)
                        if wire == 2 and 1 <= field <= 3:
                            length, at = _varint(data, at, inner_end)
                            if at < 0 or at + np.int64(length) > inner_end:
                                return failed
                            if field == 3:
                                if write:
                                    attributes[n_attr, _A_OWNER_KIND], attributes[n_attr, _A_OWNER] = SCOPE, scope
                                if not _key_value(data, at, at + np.int64(length), attributes, n_attr, write, scratch):
                                    return failed
                                n_attr += 1
                            elif write:
                                slot = _S_NAME if field == 1 else _S_VERSION
                                scopes[scope, slot], scopes[scope, slot + 1] = at, np.int64(length)
                            at += np.int64(length)
                        else:
                            at = _skip(data, wire, at, inner_end)
                            if at < 0:
                                return failed
                    continue
                row = n_rec  # LogRecord
                n_rec += 1
                if write:
                    for i in range(_R_FIELDS):
                        records[row, i] = 0
                    records[row, _R_RES], records[row, _R_SCOPE] = resource, scope
                seen_body = False
                while at < inner_end:
                    tag, at = _varint(data, at, inner_end)
                    if at < 0:
                        return failed
                    field, wire = tag >> np.uint64(3), tag & np.uint64(7)
                    if (field == 1 or field == 11) and wire == 1:
                        if at + 8 > inner_end:
                            return failed
                        if write:
                            records[row, _R_TIME if field == 1 else _R_OBSERVED] = np.int64(_fixed64(data, at))
                        at += 8
                    elif field == 2 and wire == 0:
                        value, at = _varint(data, at, inner_end)
                        if write:
                            records[row, _R_SEVERITY] = np.int64(value)
                    elif wire == 2 and (field == 3 or field == 5 or field == 6 or 9 <= field <= 10 or field == 12):
                        length, at = _varint(data, at, inner_end)
                        if at < 0 or at + np.int64(length) > inner_end:
                            return failed
                        if field == 5:
                            if seen_body:
                                return failed
                            seen_body = True
                            target = records if write else body_scratch
                            if not _any_value(data, at, at + np.int64(length), target, row if write else 0,
                                              _R_BODY_KIND, _R_BODY, _R_BODY_INT):
                                return failed
                        elif field == 6:
                            if write:
                                attributes[n_attr, _A_OWNER_KIND], attributes[n_attr, _A_OWNER] = RECORD, row
                            if not _key_value(data, at, at + np.int64(length), attributes, n_attr, write, scratch):
                                return failed
                            n_attr += 1
                        elif write:
                            slot = _R_SEV_TEXT if field == 3 else _R_TRACE if field == 9 else \
                                _R_SPAN if field == 10 else _R_EVENT
                            records[row, slot], records[row, slot + 1] = at, np.int64(length)
                        at += np.int64(length)
                    else:
                        at = _skip(data, wire, at, inner_end)
                        if at < 0:
                            return failed
                at = inner_end
            at = part_end
        at = res_end
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


@njit(cache=True, nogil=True)
def gather(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, as_hex: bool) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of the spans back to back, each byte as two hex digits when ``as_hex``."""
    width = 2 if as_hex else 1
    offsets = np.zeros(len(starts) + 1, dtype=np.int32)
    for i in range(len(starts)):
        offsets[i + 1] = offsets[i] + width * lengths[i]
    out = np.empty(offsets[-1], dtype=np.uint8)
    for i in range(len(starts)):
        at = offsets[i]
        for j in range(lengths[i]):
            byte = data[starts[i] + j]
            if as_hex:
                high, low = byte >> 4, byte & 15
                out[at] = high + 48 if high < 10 else high + 87
                out[at + 1] = low + 48 if low < 10 else low + 87
                at += 2
            else:
                out[at] = byte
                at += 1
    return offsets, out


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
    gather(scanned[0], scanned[1][:, _R_TRACE], scanned[1][:, _R_TRACE + 1], True)
