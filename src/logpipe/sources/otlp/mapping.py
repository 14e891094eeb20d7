"""OTLP log records to logpipe's columns, as the OpenTelemetry logs data model and its semantic
conventions name them:

- ``service.name`` (a resource attribute) -> service; ``unknown_service`` without one, as the
  OpenTelemetry SDKs name a service that set none;
- severity number (or, without one, its text) -> level;
- body -> message (a string as it is, another value as JSON);
- trace id -> trace_id (hex), span id -> the attribute ``span_id``;
- time (the observed time where it is 0) -> ts;
- ``http.request.method``, ``http.route`` or ``url.path``, ``http.response.status_code``,
  ``client.address``, ``server.address``, ``user.id`` (and their older names) -> their columns;
- every other attribute -> attributes, the resource's prefixed ``resource.`` and the scope's ``scope.``.

Columns are built field by field over the request's records; each record's JSON is kept for its dead
letter only when it has one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from logpipe.events import TS_TYPE
from logpipe.sources import spans
from logpipe.sources.otlp import wire
from logpipe.transport.intake import Records

UNKNOWN_SERVICE = "unknown_service"
# semantic-convention attribute -> column; the first name found wins
COLUMNS: dict[str, tuple[str, ...]] = {
    "method": ("http.request.method", "http.method"),
    "endpoint": ("http.route", "url.path", "http.target"),
    "status": ("http.response.status_code", "http.status_code"),
    "client_ip": ("client.address", "client.ip", "net.peer.ip"),
    "host": ("server.address", "net.host.name"),
    "user_id": ("user.id", "enduser.id"),
}
_TAKEN = {name: column for column, names in COLUMNS.items() for name in names}


def level_of(number: int, text: str) -> str:
    """OpenTelemetry's severity number ranges (1-4 TRACE ... 21-24 FATAL) as logpipe's levels; without
    a number, the text (which normalization reads with its aliases)."""
    if number <= 0:
        return text
    for bound, level in ((8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR")):
        if number <= bound:
            return level
    return "FATAL"


def text_of(value: AnyValue) -> str | None:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return orjson.dumps(_plain(value)).decode()


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    return text_of(value)


def records_of(request: ExportLogsServiceRequest) -> Records:
    """The request's log records as columns (one list per column and flat attribute entries, not an
    object per record: the loop is most of the receiver's CPU)."""
    ts: list[int | None] = []
    services: list[str] = []
    levels: list[str | None] = []
    messages: list[str | None] = []
    traces: list[str | None] = []
    keys: list[str] = []
    values: list[str] = []
    counts: list[int] = []
    taken: list[tuple[int, dict[str, str]]] = []  # (row, column -> value) of the records with such attributes
    for resource_logs in request.resource_logs:
        base: list[tuple[str, str]] = []
        service = UNKNOWN_SERVICE
        for kv in resource_logs.resource.attributes:
            text = text_of(kv.value)
            if kv.key == "service.name":
                service = text
            elif text is not None:
                base.append(("resource." + kv.key, text))
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            scoped = list(base)
            if scope.name:
                scoped.append(("scope.name", scope.name))
            if scope.version:
                scoped.append(("scope.version", scope.version))
            scoped += [("scope." + kv.key, t) for kv in scope.attributes if (t := text_of(kv.value)) is not None]
            scoped_keys, scoped_values = [k for k, _ in scoped], [v for _, v in scoped]
            records = scope_logs.log_records
            services += [service] * len(records)
            for record in records:
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                ts.append(nanos // 1_000_000 if nanos else None)
                levels.append(level_of(record.severity_number, record.severity_text) or None)
                body = record.body
                messages.append(body.string_value if body.WhichOneof("value") == "string_value" else text_of(body))
                trace = record.trace_id
                traces.append(trace.hex() if trace else None)
                keys += scoped_keys
                values += scoped_values
                count = len(scoped_keys)
                span = record.span_id
                if span:
                    keys.append("span_id")
                    values.append(span.hex())
                    count += 1
                if record.event_name:
                    keys.append("event_name")
                    values.append(record.event_name)
                    count += 1
                found: dict[str, str] | None = None
                for kv in record.attributes:
                    value = kv.value
                    text = value.string_value if value.WhichOneof("value") == "string_value" else text_of(value)
                    if text is None:
                        continue
                    key = kv.key
                    column = _TAKEN.get(key)
                    if column is not None:
                        if found is None:
                            found = {}
                        if column not in found:
                            found[column] = text
                            continue
                    keys.append(key)
                    values.append(text)
                    count += 1
                if found:
                    taken.append((len(counts), found))
                counts.append(count)
    n = len(counts)
    by_column: dict[str, list[str | None]] = {column: [None] * n for column in COLUMNS}
    for row, found in taken:
        for column, text in found.items():
            by_column[column][row] = text
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    table = pa.table({
        "ts": pa.array(ts, pa.int64()).cast(TS_TYPE),
        "service": pa.array(services, pa.string()),
        "level": pa.array(levels, pa.string()),
        "message": pa.array(messages, pa.string()),
        "trace_id": pa.array(traces, pa.string()),
        **{column: pa.array(by_column[column], pa.string()) for column in COLUMNS},
        "attributes": pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys, pa.string()),
                                              pa.array(values, pa.string())),
    })
    return Records(table)


def records_of_body(body: bytes, json: bool) -> Records:
    """The records of a request body: protobuf read by ``wire`` where it can, else (and for JSON)
    through the generated classes; ValueError when the body is no OTLP request."""
    if not json:
        records = _records_of_wire(body)
        if records is not None:
            return records
    return records_of(parse_request(body, json))


_LEVELS = pa.array(["", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], pa.string())


def _records_of_wire(body: bytes) -> Records | None:
    """``records_of`` of the request in ``body``, from the spans ``wire.scan`` found; None where it
    does not read the request. Equal to ``records_of`` row for row (a property test holds them so)."""
    scanned = wire.scan(body)
    if scanned is None:
        return None
    data, rec, att, scopes, n_resources = scanned
    try:
        return _assembled(data, rec, att, scopes, n_resources)
    except pa.ArrowInvalid:  # not UTF-8 where protobuf wants a string: the generated classes say so
        return None


def _assembled(data: np.ndarray, rec: np.ndarray, att: np.ndarray, scopes: np.ndarray, n_resources: int) -> Records:
    def strings(starts: np.ndarray, lengths: np.ndarray, as_hex: bool = False) -> pa.Array:
        return spans.strings(data, starts, lengths, as_hex=as_hex)

    n = len(rec)
    kinds = att[:, wire._A_KIND]
    is_string = kinds == wire.STRING
    texts = pc.if_else(pa.array(is_string),
                       strings(att[:, wire._A_VALUE], np.where(is_string, att[:, wire._A_VALUE + 1], 0)),
                       _scalar_texts(kinds, att[:, wire._A_INT]))
    keys = strings(att[:, wire._A_KEY], att[:, wire._A_KEY + 1])
    owner_kind, owner = att[:, wire._A_OWNER_KIND], att[:, wire._A_OWNER]
    not_records = np.flatnonzero(owner_kind != wire.RECORD)  # the resources' and scopes': few
    outer = pa.array(not_records, pa.int64())
    key_list = dict(zip(not_records.tolist(), keys.take(outer).to_pylist(), strict=True))
    text_list = dict(zip(not_records.tolist(), texts.take(outer).to_pylist(), strict=True))

    services: list[str | None] = [UNKNOWN_SERVICE] * n_resources
    base: list[list[tuple[str, str]]] = [[] for _ in range(n_resources)]
    scoped: list[list[tuple[str, str]]] = []
    for i in not_records[owner_kind[not_records] == wire.RESOURCE]:
        key, text = key_list[i], text_list[i]
        if key == "service.name":
            services[owner[i]] = text
        elif text is not None:
            base[owner[i]].append(("resource." + key, text))
    names = strings(scopes[:, wire._S_NAME], scopes[:, wire._S_NAME + 1]).to_pylist()
    versions = strings(scopes[:, wire._S_VERSION], scopes[:, wire._S_VERSION + 1]).to_pylist()
    for scope in range(len(scopes)):
        entries = list(base[scopes[scope, wire._S_RES]])
        if names[scope]:
            entries.append(("scope.name", names[scope]))
        if versions[scope]:
            entries.append(("scope.version", versions[scope]))
        scoped.append(entries)
    for i in not_records[owner_kind[not_records] == wire.SCOPE]:
        if text_list[i] is not None:
            scoped[owner[i]].append(("scope." + key_list[i], text_list[i]))

    # the attribute map's entries: (row, group, order) sorts them as records_of appends them
    scope_of = rec[:, wire._R_SCOPE]
    scoped_counts = np.array([len(e) for e in scoped], dtype=np.int64)
    scoped_starts = np.concatenate([[0], np.cumsum(scoped_counts)[:-1]]).astype(np.int64)
    per_record = scoped_counts[scope_of] if n else np.zeros(0, dtype=np.int64)
    scoped_rows = np.repeat(np.arange(n), per_record)
    within = np.arange(len(scoped_rows)) - np.repeat(np.cumsum(per_record) - per_record, per_record)
    which = (scoped_starts[scope_of] if n else np.zeros(0, dtype=np.int64)).repeat(per_record) + within
    flat_scoped = [entry for entries in scoped for entry in entries]
    parts_rows, parts_group, parts_order = [scoped_rows], [np.zeros(len(scoped_rows), np.int64)], [within]
    picked = pa.array(which, pa.int64())
    parts_keys = [pa.array([key for key, _ in flat_scoped], pa.string()).take(picked)]
    parts_values = [pa.array([text for _, text in flat_scoped], pa.string()).take(picked)]
    for group, (slot, key, as_hex) in enumerate(((wire._R_SPAN, "span_id", True),
                                                  (wire._R_EVENT, "event_name", False)), start=1):
        rows = np.flatnonzero(rec[:, slot + 1] > 0)
        parts_rows.append(rows)
        parts_group.append(np.full(len(rows), group, np.int64))
        parts_order.append(np.zeros(len(rows), np.int64))
        parts_keys.append(pa.repeat(pa.scalar(key), len(rows)).cast(pa.string()))
        parts_values.append(strings(rec[rows, slot], rec[rows, slot + 1], as_hex))

    # a record's attributes: the first of each column's names fills the column, the others stay
    mine = np.flatnonzero((owner_kind == wire.RECORD) & texts.is_valid().to_numpy(zero_copy_only=False))
    mine_keys = keys.take(pa.array(mine, pa.int64()))
    names_taken = list(_TAKEN)
    column_of_name = np.array([list(COLUMNS).index(_TAKEN[name]) for name in names_taken] + [-1], dtype=np.int64)
    found = pc.fill_null(pc.index_in(mine_keys, value_set=pa.array(names_taken)), len(names_taken))
    column = column_of_name[found.to_numpy(zero_copy_only=False)]
    composite = owner[mine] * len(COLUMNS) + column
    candidates = np.flatnonzero(column >= 0)
    first = candidates[np.unique(composite[candidates], return_index=True)[1]]
    is_taken = np.zeros(len(mine), dtype=bool)
    is_taken[first] = True
    kept = mine[~is_taken]
    parts_rows.append(owner[kept])
    parts_group.append(np.full(len(kept), 3, np.int64))
    parts_order.append(kept)
    parts_keys.append(keys.take(pa.array(kept, pa.int64())))
    parts_values.append(texts.take(pa.array(kept, pa.int64())))

    rows = np.concatenate(parts_rows).astype(np.int64)
    order = np.lexsort((np.concatenate(parts_order), np.concatenate(parts_group), rows))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    attributes = pa.MapArray.from_arrays(pa.array(offsets), pa.concat_arrays(parts_keys).take(pa.array(order)),
                                         pa.concat_arrays(parts_values).take(pa.array(order)))

    columns = {}
    taken_rows, taken_columns = owner[mine[first]], column[first]
    taken_texts = texts.take(pa.array(mine[first], pa.int64()))
    for index, name in enumerate(COLUMNS):
        at = np.flatnonzero(taken_columns == index)
        where = np.full(n, len(at), dtype=np.int64)
        where[taken_rows[at]] = np.arange(len(at))
        columns[name] = pa.concat_arrays([taken_texts.take(pa.array(at, pa.int64())),
                                          pa.nulls(1, pa.string())]).take(pa.array(where))

    times, observed = rec[:, wire._R_TIME], rec[:, wire._R_OBSERVED]
    if (times < 0).any() or (observed < 0).any():
        raise pa.ArrowInvalid("a time past int64")  # records_of refuses it too, with the generated classes
    nanos = np.where(times != 0, times, observed)
    number = rec[:, wire._R_SEVERITY]
    bound = np.searchsorted(np.array([0, 8, 12, 16, 20]), number, side="left")  # 1-8 DEBUG ... 21+ FATAL
    severity_text = strings(rec[:, wire._R_SEV_TEXT], rec[:, wire._R_SEV_TEXT + 1])
    levels = pc.if_else(pa.array(number <= 0), severity_text, _LEVELS.take(pa.array(np.minimum(bound, 5))))
    body_kind = rec[:, wire._R_BODY_KIND]
    body_string = body_kind == wire.STRING
    message = pc.if_else(pa.array(body_string),
                         strings(rec[:, wire._R_BODY], np.where(body_string, rec[:, wire._R_BODY + 1], 0)),
                         _scalar_texts(body_kind, rec[:, wire._R_BODY_INT]))
    traced = rec[:, wire._R_TRACE + 1] > 0
    trace = pc.if_else(pa.array(traced), strings(rec[:, wire._R_TRACE], np.where(traced, rec[:, wire._R_TRACE + 1], 0),
                                                 True), pa.nulls(n, pa.string()))
    table = pa.table({
        "ts": pa.array(nanos // 1_000_000, pa.int64(), mask=nanos == 0).cast(TS_TYPE),
        "service": pa.array(services, pa.string()).take(pa.array(rec[:, wire._R_RES])),
        "level": pc.if_else(pc.equal(levels, ""), pa.nulls(n, pa.string()), levels),
        "message": message,
        "trace_id": trace,
        **columns,
        "attributes": attributes,
    })
    return Records(table)


def _scalar_texts(kinds: np.ndarray, integers: np.ndarray) -> pa.Array:
    """The text of a bool or int value (as ``text_of`` writes it), null for any other kind."""
    numbers = pc.cast(pa.array(integers, pa.int64()), pa.string())
    booleans = pc.if_else(pa.array(integers != 0), "true", "false")
    return pc.if_else(pa.array(kinds == wire.INT), numbers,
                      pc.if_else(pa.array(kinds == wire.BOOL), booleans, pa.nulls(len(kinds), pa.string())))


def parse_request(body: bytes, json: bool) -> ExportLogsServiceRequest:
    """An ``ExportLogsServiceRequest`` from its protobuf or OTLP/JSON encoding; ValueError when it is
    neither. OTLP/JSON writes trace and span ids as hex, where protobuf's JSON mapping expects base64."""
    request = ExportLogsServiceRequest()
    try:
        if not json:
            request.ParseFromString(body)
            return request
        from google.protobuf import json_format

        document = orjson.loads(body)
        for resource_logs in document.get("resourceLogs") or []:
            for scope_logs in resource_logs.get("scopeLogs") or []:
                for record in scope_logs.get("logRecords") or []:
                    for key in ("traceId", "spanId"):
                        if record.get(key):
                            record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise ValueError(f"not an OTLP logs request: {exc}") from exc
    except Exception as exc:  # protobuf's DecodeError and ParseError
        raise ValueError(f"not an OTLP logs request: {exc}") from exc
    return request
