"""The JSON wire format: one JSON object per event, NDJSON for batches.

Field names and types come from ``logpipe.events.WIRE_FIELDS``; fields not in the schema are
allowed and kept by the processor in ``attributes``. Timestamps are ISO 8601 strings
(``2026-11-25T06:36:00.123Z``) or epoch seconds/milliseconds.

Encoding and the fast decoding path are columnar (Arrow compute, pyarrow's JSON reader);
only a batch that the fast path cannot read is decoded record by record, so one bad
record costs its batch a slower parse, never the batch itself.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from logpipe.events import WIRE_FIELDS, Wire

_WIRE_ARROW: dict[Wire, pa.DataType] = {
    Wire.STRING: pa.string(),
    Wire.INTEGER: pa.int64(),
    Wire.NUMBER: pa.float64(),
    Wire.TIMESTAMP: pa.string(),
}
# The types a well-behaved producer sends; the fast path reads exactly these.
WIRE_SCHEMA = pa.schema([(f.name, _WIRE_ARROW[f.wire]) for f in WIRE_FIELDS])
_WIRE_NAMES = frozenset(WIRE_SCHEMA.names)
_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _json_string(column: pa.Array) -> pa.Array:
    column = pc.fill_null(column, "")
    if pc.any(pc.match_substring_regex(column, r'[\\"\x00-\x1f]')).as_py():
        for old, new in _JSON_ESCAPES:
            column = pc.replace_substring(column, old, new)
        column = pc.replace_substring_regex(column, r"[\x00-\x1f]", " ")
    return column


def encode_ndjson(table: pa.Table) -> bytes:
    """Serialize the wire fields of ``table`` as NDJSON (one line per row, newline-terminated)."""
    if table.num_rows == 0:
        return b""
    parts: list[pa.Array | str] = []
    for f in WIRE_FIELDS:
        if f.name not in table.column_names:
            continue
        column = table.column(f.name).combine_chunks()
        prefix = ("{" if not parts else ",") + f'"{f.name}":'
        if f.wire is Wire.TIMESTAMP:
            parts += [prefix + '"', pc.strftime(column, "%Y-%m-%dT%H:%M:%SZ"), '"']
        elif f.wire is Wire.STRING:
            parts += [prefix + '"', _json_string(column), '"']
        else:
            parts += [prefix, pc.cast(pc.fill_null(column, 0), pa.string())]
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    # Every line ends in a newline, so the concatenated values are the NDJSON document.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def encode_lines(table: pa.Table) -> list[bytes]:
    """One JSON document per row, e.g. one Kafka message each."""
    return encode_ndjson(table).splitlines()


@dataclass
class BadRecord:
    index: int  # position among the batch's records (blank lines not counted)
    raw: str
    reason: str


@dataclass
class DecodedBatch:
    """Raw columns as sent (wire types where possible, strings otherwise) plus what could not be read."""

    table: pa.Table
    row_index: list[int] | None  # record position of each table row; None when rows are records 0..n-1
    bad: list[BadRecord] = field(default_factory=list)
    record_count: int = 0
    raw_lines: list[bytes] | None = None  # each table row's original line, kept by the slow path


def decode_ndjson(payload: bytes) -> DecodedBatch:
    """Read an NDJSON payload into Arrow. Unknown fields are kept as extra columns."""
    try:
        table = pj.read_json(
            io.BytesIO(payload),
            parse_options=pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="infer"),
        )
        return DecodedBatch(table, None, [], table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _decode_records(payload)


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _decode_records(payload: bytes) -> DecodedBatch:
    """Slow path: record by record, so that each bad record gets its own reason."""
    records: list[dict] = []
    raw_lines: list[bytes] = []
    row_index: list[int] = []
    bad: list[BadRecord] = []
    index = 0
    for line in payload.split(b"\n"):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append(BadRecord(index, line.decode("utf-8", "replace"), f"invalid JSON: {exc}"))
        else:
            if isinstance(value, dict):
                records.append(value)
                raw_lines.append(line)
                row_index.append(index)
            else:
                bad.append(BadRecord(index, line.decode("utf-8", "replace"),
                                     f"not a JSON object: got {type(value).__name__}"))
        index += 1
    columns: dict[str, pa.Array] = {}
    for name in WIRE_SCHEMA.names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values, type=WIRE_SCHEMA.field(name).type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([_as_text(v) for v in values], type=pa.string())
    extras = [[(k, _as_text(v)) for k, v in r.items() if k not in _WIRE_NAMES and v is not None]
              for r in records]
    columns["attributes"] = pa.array(extras, type=pa.map_(pa.string(), pa.string()))
    return DecodedBatch(pa.table(columns), row_index, bad, index, raw_lines)
