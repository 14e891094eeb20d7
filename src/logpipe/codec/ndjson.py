"""The JSON wire format: one JSON object per event, NDJSON for batches.

Field names and types come from ``logpipe.events.WIRE_FIELDS``; fields not in the schema are
allowed and kept by the processor in ``attributes``. Timestamps are ISO 8601 strings
(``2026-11-25T06:36:00.123Z``) or epoch seconds/milliseconds.

Encoding is columnar (Arrow compute). Decoding has three paths: flat objects of known fields
(nearly every batch) are scanned by ``codec.flat_json``; a batch with other fields or types goes to
pyarrow's JSON reader, which keeps unknown fields; only a batch that neither can read is decoded
record by record, so one bad record costs its batch a slower parse, never the batch itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from logpipe.codec.schema import MAX_DEPTH, WIRE_NAMES, WIRE_SCHEMA
from logpipe.events import WIRE_FIELDS, Wire

_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))


def _json_string(column: pa.Array) -> pa.Array:
    """Escaped for a JSON string; only the (few) values that need it pay for the escaping."""
    column = pc.fill_null(column, "")
    data = column.buffers()[2]
    if data is None:
        return column
    text = np.frombuffer(data, dtype=np.uint8)
    if not ((text < 0x20) | (text == 0x22) | (text == 0x5C)).any():  # a byte scan is far cheaper than a regex
        return column
    needs = pc.match_substring_regex(column, r'[\\"\x00-\x1f]')
    if not pc.any(needs).as_py():
        return column
    escaped = pc.filter(column, needs)
    for old, new in _JSON_ESCAPES:
        escaped = pc.replace_substring(escaped, old, new)
    escaped = pc.replace_substring_regex(escaped, r"[\x00-\x1f]", " ")
    return pc.replace_with_mask(column, needs, escaped)


def _iso_millis(column: pa.Array) -> pa.Array:
    """``2026-11-25T06:36:00.123Z``. A batch spans few distinct seconds, so only those go through
    strftime; the milliseconds are appended as digits."""
    epoch_ms = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy(zero_copy_only=False)
    seconds, inverse = np.unique(np.floor_divide(epoch_ms, 1000), return_inverse=True)
    stamped = pc.strftime(pa.array(seconds, pa.timestamp("s", tz="UTC")), "%Y-%m-%dT%H:%M:%S")
    millis = pc.utf8_slice_codeunits(pc.cast(pa.array(np.mod(epoch_ms, 1000) + 1000), pa.string()), 1)
    return pc.binary_join_element_wise(stamped.take(pa.array(inverse.ravel())), millis, ".")


def encode_ndjson(table: pa.Table) -> bytes:
    """Serialize the wire fields of ``table`` as NDJSON (one line per row, newline-terminated)."""
    return encode_ndjson_buffer(table).to_pybytes()


def encode_ndjson_buffer(table: pa.Table) -> pa.Buffer:
    """The NDJSON of ``encode_ndjson`` in the Arrow buffer it was joined in: handing it on in process
    saves copying every byte into a Python ``bytes`` (a quarter of the encoding's cost)."""
    if table.num_rows == 0:
        return pa.py_buffer(b"")
    parts: list[pa.Array | str] = []
    literal = "{"  # the text up to the next column, in one piece so the row join has fewer
    for f in WIRE_FIELDS:
        if f.name not in table.column_names:
            continue
        column = table.column(f.name).combine_chunks()
        literal += ("," if parts else "") + f'"{f.name}":'
        if pa.types.is_dictionary(column.type):
            if f.wire is Wire.STRING and not column.null_count:
                # each distinct value is escaped and framed once, then taken for every row
                framed = pc.binary_join_element_wise(literal + '"', _json_string(column.dictionary), '"', "")
                parts.append(framed.take(column.indices))
                literal = ""
                continue
            column = column.dictionary_decode()  # a null index would null its whole line
        if f.wire is Wire.TIMESTAMP:
            parts += [literal + '"', _iso_millis(column)]
            literal = 'Z"'
        elif f.wire is Wire.STRING:
            parts += [literal + '"', _json_string(column)]
            literal = '"'
        else:
            parts += [literal, pc.cast(pc.fill_null(column, 0), pa.string())]
            literal = ""
    parts.append(literal + "}\n")
    # Every line ends in a newline, so the concatenated values are the NDJSON document.
    return concatenated_values(pc.binary_join_element_wise(*parts, ""))


def concatenated_values(lines: pa.Array) -> pa.Buffer:
    """The values of a string or binary array back to back, without copying them: the slice of its
    data buffer that its offsets span."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2][int(offsets[0]):int(offsets[-1])]


def encode_lines(table: pa.Table) -> list[bytes]:
    """One JSON document per row, e.g. one Kafka message each. An ``attributes`` map column's entries
    become fields of their own, as a producer would send them (and the processor reads them back)."""
    lines = encode_ndjson(table).splitlines()
    if "attributes" not in table.column_names:
        return lines
    for i, entries in enumerate(table.column("attributes").to_pylist()):
        if entries:
            extra = orjson.dumps({k: v for k, v in entries if k not in WIRE_NAMES})
            if len(extra) > 2:
                lines[i] = lines[i][:-1] + b"," + extra[1:]
    return lines


def encode_sparse_lines(table: pa.Table) -> list[bytes]:
    """One JSON document per row of a source's columns (any subset of the wire fields, of any type the
    normalizer reads, with nulls), for a transport that carries JSON. A null is left out, as a producer
    leaves out what it does not know, instead of becoming a zero; a string is escaped exactly, control
    characters included. ``attributes`` entries become fields of their own where no column has their name."""
    n = table.num_rows
    fragments = []
    for name in table.column_names:
        if name == "attributes":
            continue
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        fragments.append(pc.fill_null(pc.binary_join_element_wise(f',"{name}":', _json_values(column), ""), ""))
    joined = pc.binary_join_element_wise(*fragments, "") if fragments else pa.array([""] * n, pa.string())
    lines = [b"{" + line[1:] + b"}" for line in pc.cast(joined, pa.binary()).to_pylist()]
    if "attributes" in table.column_names:
        taken = set(table.column_names) | set(WIRE_NAMES)
        for i, entries in enumerate(table.column("attributes").to_pylist()):
            if entries:
                extra = orjson.dumps({k: v for k, v in entries if k not in taken})
                if len(extra) > 2:
                    lines[i] = lines[i][:-1] + (b"," if len(lines[i]) > 2 else b"") + extra[1:]
    return lines


def _json_values(column: pa.Array) -> pa.Array:
    """Each value of ``column`` as JSON text, null where it is null."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        return pc.if_else(column.is_valid(), pc.binary_join_element_wise('"', _iso_millis(column), 'Z"', ""), None)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or (
            pa.types.is_floating(kind) and pc.all(pc.or_kleene(pc.is_finite(column), pc.is_null(column))).as_py()
            is not False):
        return pc.cast(column, pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = pc.cast(column, pa.string())
        plain = pc.invert(pc.match_substring_regex(pc.fill_null(column, ""), r'[\\"\x00-\x1f\x7f]'))
        if pc.all(plain).as_py():
            return pc.binary_join_element_wise('"', column, '"', "")
    return pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in column.to_pylist()],
                    pa.string())


STRING_FIELDS = tuple(f.name for f in WIRE_FIELDS if f.wire is Wire.STRING)
# pyarrow's reader truncates a fraction it reads into an integer column (1.5 becomes 1): integer fields
# are left to its inference (int64, or double for a fraction), and normalization judges the values.
_READER_SCHEMA = pa.schema([f for f in WIRE_SCHEMA if not pa.types.is_integer(f.type)])


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


def decode_ndjson(payload: bytes | pa.Buffer) -> DecodedBatch:
    """Read an NDJSON payload into Arrow. Unknown fields are kept as extra columns."""
    # imported here: numba costs a process about 140 MB and half a second, which one that only
    # encodes (a load generator, `logpipe simulate`, a Kafka producer) need not pay
    from logpipe.codec.flat_json import decode_flat

    flat = decode_flat(payload)
    if flat is not None:
        return DecodedBatch(flat, None, [], flat.num_rows)
    try:
        table = pj.read_json(
            pa.BufferReader(payload),
            parse_options=pj.ParseOptions(explicit_schema=_READER_SCHEMA, unexpected_field_behavior="infer"),
        )
        if max((_depth_of_type(f.type) for f in table.schema), default=0) <= MAX_DEPTH:
            # Arrow's JSON reader builds some lists with a child shorter than their offsets say (a list
            # that starts with null: [null, false]); such a table is read record by record instead
            table.validate(full=True)
            return DecodedBatch(table, None, [], table.num_rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return _decode_records(payload if isinstance(payload, bytes) else payload.to_pybytes())


def _depth_of_type(kind: pa.DataType) -> int:
    """How deep an Arrow type nests objects and arrays (a scalar is 0)."""
    if pa.types.is_struct(kind):
        return 1 + max((_depth_of_type(kind.field(i).type) for i in range(kind.num_fields)), default=0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return 1 + _depth_of_type(kind.value_type)
    return 0


def _depth(value: object) -> int:
    """How deep a decoded JSON value nests objects and arrays, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def prepare_decoder() -> None:
    """Load the flat-batch scanner (on a fresh machine, compile it: a few seconds, then cached), so that
    a processor's first batch does not wait for it. Components call this as they start."""
    from logpipe.codec.flat_json import decode_flat

    sample = b'{"service":"a\\n\\u00e9\\ud83d\\ude00","status":200,"latency_ms":1.5,"message":null}\n'
    decode_flat(sample)
    joined_lines([sample.rstrip()])


def is_one_line_each(body: bytes, count: int) -> bool:
    """Whether ``body`` is exactly ``count`` lines, none empty, each ending in a newline: values joined
    by newlines were each one non-empty line. Counted in compiled loops, not per value."""
    from logpipe.codec.flat_json import line_breaks

    if not body:
        return count == 0
    newlines, empty = line_breaks(body)
    return newlines == count and empty == 0 and body[-1] == 10


def joined_lines(values: list[bytes | None]) -> bytes | None:
    """The values as one NDJSON document in one copy, when each is one non-empty line (nearly always
    so for Kafka messages); None when some value is missing, empty or holds a newline."""
    try:
        body = b"\n".join([*values, b""])
    except TypeError:  # a missing value (None)
        return None
    return body if is_one_line_each(body, len(values)) else None


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _refusal(value: object) -> str | None:
    """Why a decoded line is no event, or None: not an object, nested too deep, or an object, array or
    boolean where a string field belongs (it would be stored as its JSON text: not as sent)."""
    if not isinstance(value, dict):
        return f"not a JSON object: got {type(value).__name__}"
    if _depth(value) > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    for name in STRING_FIELDS:
        field_value = value.get(name)
        if isinstance(field_value, dict | list | bool):
            return f"{name}: {type(field_value).__name__} where a string belongs (got {field_value!r:.100})"
    return None


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
            reason = _refusal(value)
            if reason is None:
                records.append(value)
                raw_lines.append(line)
                row_index.append(index)
            else:
                bad.append(BadRecord(index, line.decode("utf-8", "replace"), reason))
        index += 1
    columns: dict[str, pa.Array] = {}
    for name in WIRE_SCHEMA.names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values, type=WIRE_SCHEMA.field(name).type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([_as_text(v) for v in values], type=pa.string())
    extras = [[(k, _as_text(v)) for k, v in r.items() if k not in WIRE_NAMES and v is not None]
              for r in records]
    columns["attributes"] = pa.array(extras, type=pa.map_(pa.string(), pa.string()))
    return DecodedBatch(pa.table(columns), row_index, bad, index, raw_lines)
