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

import orjson
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from logpipe.events import TS_TYPE
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
    """The request's log records as columns."""
    columns: dict[str, list[Any]] = {name: [] for name in ("ts", "service", "level", "message", "trace_id",
                                                            *COLUMNS)}
    attributes: list[list[tuple[str, str]]] = []
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
            for record in scope_logs.log_records:
                nanos = record.time_unix_nano or record.observed_time_unix_nano
                columns["ts"].append(nanos // 1_000_000 if nanos else None)
                columns["service"].append(service)
                columns["level"].append(level_of(record.severity_number, record.severity_text) or None)
                columns["message"].append(text_of(record.body))
                columns["trace_id"].append(record.trace_id.hex() if record.trace_id else None)
                found: dict[str, str] = {}
                extra = list(scoped)
                if record.span_id:
                    extra.append(("span_id", record.span_id.hex()))
                if record.event_name:
                    extra.append(("event_name", record.event_name))
                for kv in record.attributes:
                    text = text_of(kv.value)
                    if text is None:
                        continue
                    column = _TAKEN.get(kv.key)
                    if column is not None and column not in found:
                        found[column] = text
                    else:
                        extra.append((kv.key, text))
                for column in COLUMNS:
                    columns[column].append(found.get(column))
                attributes.append(extra)
    table = pa.table({
        "ts": pa.array(columns["ts"], pa.int64()).cast(TS_TYPE),
        **{name: pa.array(columns[name], pa.string()) for name in columns if name != "ts"},
        "attributes": pa.array(attributes, pa.map_(pa.string(), pa.string())),
    })
    return Records(table)


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
