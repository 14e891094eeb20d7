"""parse_fact_log: raw wire columns in, fact rows and dead-letter records out (errors are data).

Everything is columnar: each check marks the rows it rejects, the first failing check
names the reason, and only the (rare) rejected rows are turned into Python values to
render their raw payload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from logpipe.codec.ndjson import (
    BadRecord,
    DecodedBatch,
    concatenated_values,
    decode_ndjson,
    is_one_line_each,
    joined_lines,
)
from logpipe.events import (
    DEAD_LETTER_SCHEMA,
    FACT_SCHEMA,
    FIELDS_BY_NAME,
    KINDS,
    LEVELS,
    TS_TYPE,
    WIRE_FIELDS,
    Provenance,
    random_hex,
)
from logpipe.transport.intake import Records

UINT64_MAX = 2**64 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
EXACT_FLOAT = 2.0**53  # a float64 beyond this need not be the integer that was sent
_ISO_TS = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:?\d{2})?$"
_HAS_ZONE = r"(Z|z|[+-]\d{2}:?\d{2})$"
_NUMBER = r"^\s*-?\d+(\.\d*)?([eE][-+]?\d+)?\s*$"
_LEVEL_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL",
                  "INFORMATION": "INFO", "TRACE": "DEBUG", "NOTICE": "INFO"}
_KNOWN = frozenset(f.name for f in WIRE_FIELDS) | {"attributes"}


def current_ms() -> int:
    """Now, in epoch milliseconds: what event times are judged against and ingest times stamped with."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Rules:
    """What a valid event is beyond its fields' types, the same in every engine."""

    max_future_s: float = 300.0  # an event time further ahead is refused (clock skew allowed for)
    retention_days: int = 30  # an event time older than the retention would be dropped by the TTL: refused
    max_event_bytes: int = 1 << 20  # as Kafka's message.max.bytes

    def time_window_ms(self, now_ms: int) -> tuple[int, int]:
        return now_ms - self.retention_days * 86_400_000, now_ms + int(self.max_future_s * 1000)


@dataclass
class Normalized:
    facts: pa.Table  # FACT_SCHEMA
    dead_letters: list[BadRecord]
    record_count: int
    fact_positions: np.ndarray  # the record position of each fact row (records count from 0, blank lines not)


class _Rejections:
    """First failing check per row."""

    def __init__(self, n: int):
        self.reason = np.zeros(n, dtype=np.int16)
        self.messages: list[str] = [""]
        self.fields: list[str | None] = [None]

    def add(self, mask: np.ndarray | pa.Array, message: str, field: str | None = None) -> None:
        if isinstance(mask, pa.Array | pa.ChunkedArray):
            mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        fresh = mask & (self.reason == 0)
        if fresh.any():
            self.messages.append(message)
            self.fields.append(field)
            self.reason[fresh] = len(self.messages) - 1

    @property
    def ok(self) -> np.ndarray:
        return self.reason == 0


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    column = table.column(name)
    if pa.types.is_null(column.type):
        return None
    return column.combine_chunks()


def _text(table: pa.Table, name: str) -> pa.Array:
    column = _column(table, name)
    if column is None:
        return pa.nulls(table.num_rows, pa.string())
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    return column


def _number(table: pa.Table, name: str, rejections: _Rejections) -> pa.Array:
    """float64 values, null where absent; non-numeric strings are rejected. Integers beyond 2^53 become
    the nearest float64 here: the callers check ranges, and ``_unsigned`` reads big integers exactly."""
    column = _column(table, name)
    if column is None:
        return pa.nulls(table.num_rows, pa.float64())
    if pa.types.is_string(column.type):
        numeric = pc.match_substring_regex(column, _NUMBER)
        rejections.add(pc.and_kleene(pc.is_valid(column), pc.invert(numeric)), f"{name}: not a number", name)
        column = pc.cast(pc.if_else(numeric, column, None), pa.float64())
    elif pa.types.is_boolean(column.type) or not (pa.types.is_integer(column.type)
                                                  or pa.types.is_floating(column.type)):
        rejections.add(pc.is_valid(column), f"{name}: not a number", name)
        return pa.nulls(table.num_rows, pa.float64())
    return pc.cast(column, pa.float64(), safe=False)


def _unsigned(table: pa.Table, name: str, rejections: _Rejections) -> np.ndarray:
    """A UInt64 field's values exactly as sent (0 where absent); a value that is not a whole number in
    0..2^64-1, or a float too large to be one exactly, is rejected."""
    n = table.num_rows
    column = _column(table, name)
    if column is None:
        return np.zeros(n, dtype=np.uint64)
    message = f"{name}: not a whole number in 0..{UINT64_MAX}"
    if pa.types.is_integer(column.type):
        values = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
        rejections.add(values < 0, message, name)
        return np.where(values < 0, 0, values).astype(np.uint64)
    if pa.types.is_string(column.type):  # big integers come as text from the record-by-record reader
        numeric = pc.match_substring_regex(column, _NUMBER)
        rejections.add(pc.and_kleene(pc.is_valid(column), pc.invert(numeric)), f"{name}: not a number", name)
        values = np.zeros(n, dtype=np.uint64)
        refused = np.zeros(n, dtype=bool)
        for i, text in enumerate(pc.if_else(numeric, column, None).to_pylist()):
            if text is None:
                continue
            try:
                number = int(text.strip())
            except ValueError:  # a fraction or an exponent: exact only when a whole number
                exact = float(text)
                number = int(exact) if exact.is_integer() and abs(exact) < EXACT_FLOAT else -1
            if 0 <= number <= UINT64_MAX:
                values[i] = number
            else:
                refused[i] = True
        rejections.add(refused, message, name)
        return values
    floats = _number(table, name, rejections)
    values = pc.fill_null(floats, 0.0).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        refused = ~np.isfinite(values) | (values < 0) | (values != np.floor(values)) | (values >= EXACT_FLOAT)
    rejections.add(refused, message, name)
    return np.where(refused, 0.0, values).astype(np.uint64)


def _timestamps(table: pa.Table, rejections: _Rejections, window_ms: tuple[int, int]) -> pa.Array:
    """Event times as milliseconds; absent, unreadable, or outside ``window_ms`` (older than the
    retention, further ahead than the allowed clock skew) are rejected."""
    column = _column(table, "ts")
    n = table.num_rows
    if column is None:
        rejections.add(np.ones(n, dtype=bool), "ts: missing", "ts")
        return pa.array(np.zeros(n, dtype=np.int64)).cast(TS_TYPE)
    rejections.add(pc.is_null(column), "ts: missing", "ts")
    epoch_ms = pa.nulls(n, pa.float64())
    if pa.types.is_timestamp(column.type):
        ts = pc.cast(column, TS_TYPE, safe=False)  # finer units truncate to the millisecond
        _reject_outside(pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64),
                        pc.is_valid(column).to_numpy(zero_copy_only=False), window_ms, rejections)
        return ts
    plain_ms = _plain_utc_ms(column) if pa.types.is_string(column.type) else None
    if plain_ms is not None:
        epoch_ms = plain_ms
    elif pa.types.is_string(column.type):
        iso = pc.match_substring_regex(column, _ISO_TS)
        numeric = pc.match_substring_regex(column, _NUMBER)
        rejections.add(pc.and_kleene(pc.is_valid(column), pc.invert(pc.or_kleene(iso, numeric))),
                       "ts: unrecognized timestamp format", "ts")
        text = pc.if_else(iso, column, None)
        text = pc.if_else(pc.match_substring_regex(text, _HAS_ZONE), text, pc.binary_join_element_wise(text, "Z", ""))
        text = pc.replace_substring_regex(text, r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2})(Z|z|[+-]|$)", r"\1:00\2")
        text = pc.replace_substring(text, "z", "Z")
        parsed_ns = _parse_iso(text, rejections)
        iso_ms = pc.cast(pc.divide(pc.cast(parsed_ns, pa.int64()), 1_000_000), pa.float64())
        number = pc.cast(pc.if_else(numeric, column, None), pa.float64())
        epoch_ms = pc.coalesce(iso_ms, _epoch_to_ms(number))
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        epoch_ms = _epoch_to_ms(pc.cast(column, pa.float64()))
    else:
        rejections.add(pc.is_valid(column), "ts: unrecognized timestamp format", "ts")
    values = pc.fill_null(epoch_ms, 0.0).to_numpy()
    _reject_outside(values, pc.is_valid(column).to_numpy(zero_copy_only=False), window_ms, rejections)
    with np.errstate(invalid="ignore"):
        return pa.array(np.nan_to_num(values).astype(np.int64)).cast(TS_TYPE)


def _reject_outside(values_ms: np.ndarray, present: np.ndarray, window_ms: tuple[int, int],
                    rejections: _Rejections) -> None:
    oldest, newest = window_ms
    with np.errstate(invalid="ignore"):
        rejections.add(present & (values_ms < oldest), "ts: older than the retention", "ts")
        rejections.add(present & (values_ms > newest), "ts: further in the future than LOGPIPE_MAX_FUTURE_S "
                       "allows", "ts")


def _plain_utc_ms(column: pa.Array) -> pa.Array | None:
    """Epoch milliseconds when every value has the shape nearly all producers send
    (``2026-11-25T06:36:00.123Z``): one cast instead of the regular expressions of the general path.
    None when some value has another shape, which the general path then reads."""
    shaped = pc.and_(pc.ends_with(column, "Z"), pc.greater_equal(pc.utf8_length(column), 20))
    if not pc.all(shaped).as_py():
        return None
    try:
        parsed_ns = pc.cast(column, pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pc.cast(pc.divide(pc.cast(parsed_ns, pa.int64()), 1_000_000), pa.float64())


def _parse_iso(text: pa.Array, rejections: _Rejections) -> pa.Array:
    """ISO 8601 text to nanoseconds; the whole column at once, and value by value only when some
    value that looks like a timestamp is not one (2026-13-45), so that row alone is rejected."""
    nanos = pa.timestamp("ns", tz="UTC")
    try:
        return pc.cast(text, nanos)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed, failed = [], np.zeros(len(text), dtype=bool)
        for i, value in enumerate(text.to_pylist()):
            try:
                parsed.append(None if value is None else pa.scalar(value).cast(nanos).value)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                parsed.append(None)
                failed[i] = True
        rejections.add(failed, "ts: not a valid date and time", "ts")
        return pa.array(parsed, pa.int64()).cast(nanos)


def _epoch_to_ms(number: pa.Array) -> pa.Array:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude."""
    values = number.to_numpy(zero_copy_only=False)
    magnitude = np.abs(np.nan_to_num(values))
    scale = np.select([magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [1000.0, 1.0, 1e-3], 1e-6)
    return pa.array(values * scale, mask=np.isnan(values))


def _category(column: pa.Array, transform: Callable[[pa.Array], pa.Array] | None = None) -> pa.DictionaryArray:
    """A LowCardinality field as an Arrow dictionary of its distinct values, missing ones as "".
    ``transform`` runs once per distinct value, not per row, and ClickHouse takes the dictionary as
    its own instead of hashing every row's string into one."""
    if isinstance(column, pa.ChunkedArray):  # Arrow builds large string arrays in chunks (5.5M rows of "{}")
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    values = pc.fill_null(encoded.dictionary, "")
    if transform is not None:
        values = transform(values)
    distinct = pc.dictionary_encode(values)  # a transform can make two values one ("Auth", "auth")
    indices = encoded.indices if len(distinct.dictionary) == len(values) else distinct.indices.take(encoded.indices)
    return pa.DictionaryArray.from_arrays(indices, distinct.dictionary)


def _per_row(category: pa.DictionaryArray, mask_of_values: pa.Array) -> np.ndarray:
    """A mask over a category's distinct values, as a mask over its rows."""
    return mask_of_values.take(category.indices).to_numpy(zero_copy_only=False)


def _constant_category(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string()))


def _or_derived(category: pa.DictionaryArray, derive: Callable[[], np.ndarray]) -> pa.DictionaryArray:
    """The category, with its missing (empty) values derived from other fields (computed only when
    some are missing: most producers send every field). Every distinct value occurs in some row."""
    missing = pc.equal(category.dictionary, "")
    if not pc.any(missing).as_py():
        return category
    return _category(pc.if_else(_per_row(category, missing), pa.array(derive()), category.dictionary_decode()))


def _attributes(table: pa.Table) -> pa.Array:
    """Unknown fields as a string map; the slow decode path already built one."""
    n = table.num_rows
    base = _column(table, "attributes")
    if base is not None and base.type != pa.map_(pa.string(), pa.string()):
        base = None  # a producer's own "attributes" object is kept as one extra field
    elif base is not None and base.null_count:
        base = base.combine_chunks() if isinstance(base, pa.ChunkedArray) else base
        base = pa.MapArray.from_arrays(base.offsets, base.keys, base.items)  # a source's "none" is an empty map
    extras = [name for name in table.column_names
              if name not in _KNOWN or (name == "attributes" and base is None and _column(table, name) is not None)]
    if not extras:
        return base if base is not None else _empty_maps(n)
    texts, valid = [], []
    for name in extras:
        column = table.column(name)
        column = column.combine_chunks() if not pa.types.is_nested(column.type) else column
        if pa.types.is_nested(column.type):
            column = pa.array([None if v is None else orjson.dumps(v).decode() for v in _nested_values(column)],
                              type=pa.string())
        elif pa.types.is_null(column.type):
            column = pa.nulls(n, pa.string())
        else:
            column = pc.cast(column, pa.string())
        texts.append(column)
        valid.append(column.is_valid().to_numpy(zero_copy_only=False))
    valid_matrix = np.column_stack(valid)
    rows, cols = np.nonzero(valid_matrix)  # row-major: entries come out grouped by row
    offsets = np.concatenate([[0], np.cumsum(valid_matrix.sum(axis=1))]).astype(np.int32)
    keys = pa.array(extras).take(pa.array(cols))
    items = pa.concat_arrays(texts).take(pa.array(cols.astype(np.int64) * n + rows))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)


def _nested_values(column: pa.ChunkedArray) -> list:
    return column.to_pylist()


def _empty_maps(n: int) -> pa.Array:
    empty = pa.array([], pa.string())
    return pa.MapArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), empty, empty)


def _canonical_levels(levels: pa.Array) -> pa.Array:
    levels = pc.utf8_upper(pc.utf8_trim_whitespace(levels))
    for alias, canonical in _LEVEL_ALIASES.items():
        levels = pc.if_else(pc.equal(levels, alias), canonical, levels)
    return levels


def _strings(table: pa.Table, name: str) -> pa.Array:
    return pc.fill_null(_text(table, name), "")


def parse_fact_log(raw: pa.Table, provenance: Provenance, row_index: list[int] | None = None,
                   now_ms: int | None = None, raw_lines: list[bytes] | pa.Array | None = None,
                   rules: Rules = Rules(),
                   ) -> tuple[pa.Table, list[BadRecord], np.ndarray]:
    """Coerce raw wire columns to the fact schema. A value is stored as sent or its row is rejected:
    numbers past their column's type, times outside ``rules``' window, identifiers longer than their
    field's ``max_length`` or holding control characters.

    Returns the good rows (``FACT_SCHEMA``), one ``BadRecord`` per rejected row, with its raw payload
    and the first reason it failed, and the record position of each good row.
    """
    n = raw.num_rows
    rejections = _Rejections(n)
    if now_ms is None:
        now_ms = current_ms()
    ts = _timestamps(raw, rejections, rules.time_window_ms(now_ms))

    service = _category(_text(raw, "service"), lambda v: pc.utf8_lower(pc.utf8_trim_whitespace(v)))
    rejections.add(_per_row(service, pc.equal(service.dictionary, "")), "service: missing", "service")
    _check_identifier(service, "service", rejections)

    status_num = _number(raw, "status", rejections)
    status_values = pc.fill_null(status_num, 0).to_numpy(zero_copy_only=False)
    rejections.add((status_values != 0) & ((status_values < 100) | (status_values > 599)
                                           | (status_values != np.round(status_values))),
                   "status: not an HTTP status (100-599)", "status")
    status = np.clip(np.nan_to_num(status_values), 0, 65535).astype(np.uint16)

    latency = pc.fill_null(_number(raw, "latency_ms", rejections), 0.0).to_numpy(zero_copy_only=False)
    rejections.add((latency < 0) | ~np.isfinite(latency) | (latency > FLOAT32_MAX),
                   "latency_ms: negative, not finite or past Float32", "latency_ms")
    size = _unsigned(raw, "bytes", rejections)

    level = _category(_text(raw, "level"), _canonical_levels)
    level = _or_derived(level, lambda: np.where(status >= 500, "ERROR", np.where(status >= 400, "WARN", "INFO")))
    rejections.add(_per_row(level, pc.invert(pc.is_in(level.dictionary, pa.array(LEVELS)))),
                   f"level: not one of {', '.join(LEVELS)}", "level")

    kind = _category(_text(raw, "kind"), lambda v: pc.utf8_lower(pc.utf8_trim_whitespace(v)))
    kind = _or_derived(kind, lambda: np.where(status > 0, "request", "app_error"))
    rejections.add(_per_row(kind, pc.invert(pc.is_in(kind.dictionary, pa.array(KINDS)))),
                   f"kind: not one of {', '.join(KINDS)}", "kind")
    categories = {name: _category(_text(raw, name), transform) for name, transform in
                  (("method", pc.utf8_upper), ("endpoint", None), ("host", None), ("region", None),
                   ("error_code", None))}
    for name, category in categories.items():
        _check_identifier(category, name, rejections)
    strings = {name: _strings(raw, name) for name in ("user_id", "trace_id", "client_ip")}
    for name, column in strings.items():
        _check_length(column, name, rejections)

    positions = np.asarray(row_index, dtype=np.int64) if row_index is not None else np.arange(n, dtype=np.int64)
    offsets = provenance.offsets[positions] if provenance.offsets is not None else np.full(n, -1, dtype=np.int64)
    topics, partitions = provenance.topic_column(positions), provenance.partition_column(positions)
    event_id = _text(raw, "event_id")
    _check_length(event_id, "event_id", rejections)
    missing_id = pc.or_kleene(pc.is_null(event_id), pc.equal(event_id, "")).to_numpy(zero_copy_only=False)
    if missing_id.any():
        event_id = pc.if_else(pa.array(missing_id), _generated_ids(provenance, topics, partitions, offsets), event_id)

    ok = rejections.ok
    bad = _render_bad(raw, rejections, row_index, raw_lines) if not ok.all() else []
    facts = pa.table({
        "event_id": event_id,
        "ts": ts,
        "ingest_ts": pa.array(np.full(n, now_ms, dtype=np.int64)).cast(TS_TYPE),
        "service": service,
        "kind": kind,
        "level": level,
        "method": categories["method"],
        "endpoint": categories["endpoint"],
        "status": pa.array(status, type=pa.uint16()),
        "latency_ms": pa.array(np.where(np.isfinite(latency) & (np.abs(latency) <= FLOAT32_MAX), latency, 0.0)
                               .astype(np.float32)),
        "bytes": pa.array(size, type=pa.uint64()),
        "user_id": strings["user_id"],
        "trace_id": strings["trace_id"],
        "client_ip": strings["client_ip"],
        "host": categories["host"],
        "region": categories["region"],
        "error_code": categories["error_code"],
        "message": _strings(raw, "message"),
        "attributes": _attributes(raw),
        "source": (_category(provenance.source_column(positions)) if provenance.sources is not None
                   else _constant_category(provenance.source, n)),
        "sender": (_category(provenance.sender_column(positions)) if provenance.senders is not None
                   else _constant_category(provenance.sender, n)),
        "topic": _category(topics) if provenance.topics is not None else _constant_category(provenance.topic, n),
        "partition": pa.array(partitions),
        "offset": pa.array(np.asarray(offsets, dtype=np.int64)),
    })
    facts = facts.cast(FACT_SCHEMA)
    if not ok.all():
        facts = facts.filter(pa.array(ok))
        positions = positions[ok]
    return facts, bad, positions


_CONTROL = r"[\x00-\x1f\x7f]"


def _check_identifier(category: pa.DictionaryArray, name: str, rejections: _Rejections) -> None:
    """An identifier's distinct values within its field's length and without control characters."""
    limit = FIELDS_BY_NAME[name].max_length
    values = category.dictionary
    rejections.add(_per_row(category, pc.greater(pc.binary_length(values), limit)),
                   f"{name}: longer than {limit} bytes", None)
    rejections.add(_per_row(category, pc.match_substring_regex(values, _CONTROL)),
                   f"{name}: holds a control character", name)


def _check_length(column: pa.Array, name: str, rejections: _Rejections) -> None:
    limit = FIELDS_BY_NAME[name].max_length
    rejections.add(pc.greater(pc.binary_length(column), limit), f"{name}: longer than {limit} bytes", None)


def _render_bad(raw: pa.Table, rejections: _Rejections, row_index: list[int] | None,
                raw_lines: list[bytes] | pa.Array | None) -> list[BadRecord]:
    rows = np.flatnonzero(~rejections.ok)
    subset = raw.take(pa.array(rows)).to_pylist()
    bad = []
    for row, record in zip(rows, subset, strict=True):
        code = rejections.reason[row]
        record = {k: v for k, v in record.items() if v is not None and v != []}
        field = rejections.fields[code]
        message = rejections.messages[code]
        if field is not None and field in record:
            message = f"{message} (got {record[field]!r})"
        position = row_index[row] if row_index is not None else int(row)
        line = None if raw_lines is None else raw_lines[row]
        if isinstance(line, pa.Scalar):
            line = line.as_py()
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        text = line if line is not None else orjson.dumps(record, default=str).decode()
        bad.append(BadRecord(position, text, message))
    return bad


def _generated_ids(provenance: Provenance, topics: pa.Array, partitions: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Ids for events sent without one. From Kafka they name the message (``topic:partition:offset``),
    so a replay or another engine gives the same id; otherwise they are random."""
    if provenance.offsets is None:
        return random_hex(np.random.default_rng(), len(offsets), 16)
    return pc.binary_join_element_wise(topics, pa.array(partitions).cast(pa.string()),
                                       pa.array(offsets).cast(pa.string()), ":")


def normalize_ndjson(payload: bytes | pa.Buffer, provenance: Provenance, now_ms: int | None = None,
                     rules: Rules = Rules()) -> Normalized:
    """Decode and normalize one NDJSON payload: the processor's whole per-batch transform."""
    decoded: DecodedBatch = decode_ndjson(payload)
    facts, bad, positions = parse_fact_log(decoded.table, provenance, decoded.row_index, now_ms, decoded.raw_lines,
                                           rules)
    dead = sorted(decoded.bad + bad, key=lambda b: b.index)
    return Normalized(facts, dead, decoded.record_count, positions)


def normalize_records(records: Records, provenance: Provenance, now_ms: int | None = None,
                      rules: Rules = Rules()) -> Normalized:
    """Normalize events a source read into columns (no JSON to decode); a dead letter keeps the event's
    raw text when the source kept it. A row the source could not read (``Records.reasons``) is a dead
    letter with the source's reason."""
    table, raw, reasons = records.table, records.raw, records.reasons
    if reasons is None or reasons.null_count == len(reasons):
        facts, bad, positions = parse_fact_log(table, provenance, None, now_ms, raw, rules)
        return Normalized(facts, bad, table.num_rows, positions)
    unread = reasons.is_valid().to_numpy(zero_copy_only=False)
    read = np.flatnonzero(~unread)
    facts, bad, positions = parse_fact_log(table.take(read), provenance, read.tolist(), now_ms,
                                           raw.take(read) if raw is not None else None, rules)
    unread_rows = np.flatnonzero(unread)
    texts = (raw.take(unread_rows).to_pylist() if raw is not None
             else [orjson.dumps(row, default=str).decode() for row in table.take(unread_rows).to_pylist()])
    bad += [BadRecord(int(row), text or "", reason) for row, text, reason in
            zip(unread_rows, texts, reasons.drop_null().to_pylist(), strict=True)]
    return Normalized(facts, sorted(bad, key=lambda b: b.index), table.num_rows, positions)


def joined_records(parts: list[Records]) -> Records:
    """Several sources' columns as one: columns one lacks are null in its rows."""
    table = pa.concat_tables([part.table for part in parts], promote_options="permissive")
    raw, reasons = (_joined([part.raw for part in parts], parts), _joined([part.reasons for part in parts], parts))
    return Records(table, raw, reasons)


def _joined(arrays: list[pa.Array | None], parts: list[Records]) -> pa.Array | None:
    if all(array is None for array in arrays):
        return None
    return pa.concat_arrays([pc.cast(array, pa.string()) if array is not None else pa.nulls(len(part), pa.string())
                             for array, part in zip(arrays, parts, strict=True)])


def dead_letter_table(records: list[BadRecord], provenance: Provenance, now_ms: int | None = None) -> pa.Table:
    """Dead-letter rows for ``records``, stamped with where they came from."""
    if now_ms is None:
        now_ms = current_ms()
    n = len(records)
    positions = np.array([r.index for r in records], dtype=np.int64)
    offsets = (provenance.offsets[positions] if provenance.offsets is not None and n
               else np.full(n, -1, dtype=np.int64))
    return pa.table({
        "ingest_ts": pa.array(np.full(n, now_ms, dtype=np.int64)).cast(TS_TYPE),
        "source": provenance.source_column(positions),
        "topic": provenance.topic_column(positions),
        "partition": pa.array(provenance.partition_column(positions)),
        "offset": pa.array(np.asarray(offsets, dtype=np.int64)),
        "reason": pa.array([r.reason for r in records], type=pa.string()),
        "raw": pa.array([r.raw for r in records], type=pa.string()),
    }, schema=DEAD_LETTER_SCHEMA)


@dataclass
class NormalizedPartitions:
    """Offset ranges of one or more topic-partitions, normalized in one call: what both stream
    engines insert. Record positions (``BadRecord.index``) count across the ranges in order."""

    ranges: list[tuple[str, int, int, int]]  # topic, partition, first offset, last offset
    provenance: Provenance  # topic, partition and offset of every record
    facts: pa.Table
    bad: list[BadRecord]
    dead_letters: pa.Table
    payload_bytes: int  # the values as one NDJSON document: what the MB/s of the processor count

    @property
    def token(self) -> str:
        """Names the batch's messages, so a retried insert of the same batch is stored once."""
        return ",".join(f"{topic}:{partition}:{first}-{last}" for topic, partition, first, last in self.ranges)


EMPTY_MESSAGE = b'"empty message"'


def _ndjson_body(values: pa.Array) -> bytes:
    """The values joined by newlines, as one buffer copy rather than one Python object per value."""
    if len(values) == 0:
        return b""
    lines = pc.binary_join_element_wise(values, b"", b"\n")  # each value followed by a newline
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    return concatenated_values(lines).to_pybytes()


def _values_as_ndjson(values: pa.Array | list[bytes | None]) -> bytes:
    """The values as an NDJSON document, one line each. Nearly all are one non-empty line already and
    are joined as they are (polled bytes in one exact-size copy, no Arrow builder); otherwise a missing
    or empty value becomes ``EMPTY_MESSAGE`` and newlines inside a value become spaces."""
    if isinstance(values, list):
        body = joined_lines(values)
        if body is not None:
            return body
        values = pa.array(values, pa.binary())
    values = pc.fill_null(pc.cast(values, pa.binary()), b"")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    body = _ndjson_body(values)
    if is_one_line_each(body, len(values)):
        return body
    values = pc.if_else(pc.equal(pc.binary_length(values), 0), EMPTY_MESSAGE, values)
    return _ndjson_body(pc.replace_substring(values, b"\n", b" "))


OVERSIZED = b'"oversized"'  # what an oversized value is normalized as, before its dead letter is told why
KEPT_OF_OVERSIZED = 64 << 10


def _without_oversized(values: pa.Array | list[bytes | None], limit: int,
                       ) -> tuple[pa.Array | list[bytes | None], dict[int, bytes]]:
    """The values with each one larger than ``limit`` bytes replaced, and those by position."""
    if isinstance(values, list):
        if max(map(len, filter(None, values)), default=0) <= limit:  # one C-level pass: nearly always so
            return values, {}
        oversized = {i: v for i, v in enumerate(values) if v is not None and len(v) > limit}
        return [OVERSIZED if i in oversized else v for i, v in enumerate(values)], oversized
    lengths = pc.binary_length(pc.cast(values, pa.binary()))
    if (pc.max(lengths).as_py() or 0) <= limit:
        return values, {}
    mask = pc.fill_null(pc.greater(lengths, limit), False)
    positions = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    oversized = {int(i): values[int(i)].as_py() for i in positions}
    oversized = {i: v.encode() if isinstance(v, str) else v for i, v in oversized.items()}
    return pc.if_else(mask, pa.scalar(OVERSIZED, values.type), values), oversized


def _as_list(values: pa.Array | list[bytes | None]) -> list[bytes | None]:
    return values if isinstance(values, list) else values.to_pylist()


def normalize_messages(topics: pa.Array, partitions: np.ndarray, offsets: np.ndarray,
                       values: pa.Array | list[bytes | None], now_ms: int | None = None,
                       senders: list[str] | None = None, rules: Rules = Rules(),
                       sources: list[str] | None = None, refusals: dict[int, str] | None = None,
                       ) -> NormalizedPartitions:
    """Kafka messages (their topic, partition, offset and value, one event per value; each
    partition's in offset order, partitions interleaved as polled) to fact rows and dead letters, in
    one normalization: its cost is mostly per call, so one for a poll's 20-odd partitions, not one each.

    The embedded processor (values as polled, Python bytes) and the Spark job (an Arrow column) both
    call this, so they agree row for row. A value is one JSON line on the wire; one holding newlines
    or nothing still counts as one record. A value larger than ``rules.max_event_bytes`` is a dead
    letter, its first ``KEPT_OF_OVERSIZED`` bytes kept. ``sources`` names each message's source where
    its producer named one (a row's ``source``, else ``kafka``); a message in ``refusals`` (by position)
    is one its source could not read, a dead letter with the source's reason and its value as raw.
    """
    topics = pc.cast(topics, pa.string())
    partitions = np.asarray(partitions, dtype=np.int32)
    offsets = np.asarray(offsets, dtype=np.int64)
    provenance = Provenance("kafka", offsets=offsets, topics=topics, partitions=partitions,
                            senders=None if senders is None else pa.array(senders, pa.string()),
                            sources=None if sources is None else pa.array(sources, pa.string()))
    refused: dict[int, bytes | None] = {}
    if refusals:
        values = _as_list(values)
        refused = {i: values[i] for i in refusals}
        values = [OVERSIZED if i in refused else v for i, v in enumerate(values)]
    values, oversized = _without_oversized(values, rules.max_event_bytes)
    body = _values_as_ndjson(values)
    normalized = normalize_ndjson(body, provenance, now_ms, rules)
    if normalized.record_count != len(offsets):  # e.g. a whitespace-only value, which NDJSON skips
        lines = body.split(b"\n")[:len(offsets)]
        fixed = [line if line.strip() else EMPTY_MESSAGE for line in lines]
        normalized = normalize_ndjson(b"\n".join(fixed) + b"\n", provenance, now_ms, rules)
    if oversized:
        for record in normalized.dead_letters:
            if record.index in oversized:
                value = oversized[record.index]
                record.raw = value[:KEPT_OF_OVERSIZED].decode("utf-8", "replace")
                record.reason = (f"event of {len(value):,} bytes, more than the {rules.max_event_bytes:,} of "
                                 f"LOGPIPE_MAX_EVENT_BYTES (its first {KEPT_OF_OVERSIZED:,} bytes kept)")
    if refused:
        for record in normalized.dead_letters:
            if record.index in refused:
                value = refused[record.index]
                record.raw = (value or b"").decode("utf-8", "replace")
                record.reason = refusals[record.index]
    return NormalizedPartitions(_offset_ranges(topics, partitions, offsets), provenance, normalized.facts,
                                normalized.dead_letters, dead_letter_table(normalized.dead_letters, provenance, now_ms),
                                len(body))


def unreadable_messages(topics: pa.Array, partitions: np.ndarray, offsets: np.ndarray,
                        values: pa.Array | list[bytes | None], reason: str) -> NormalizedPartitions:
    """Every message a dead letter with ``reason``: what a batch becomes that normalization failed on."""
    topics = pc.cast(topics, pa.string())
    partitions = np.asarray(partitions, dtype=np.int32)
    offsets = np.asarray(offsets, dtype=np.int64)
    provenance = Provenance("kafka", offsets=offsets, topics=topics, partitions=partitions)
    raw = values.to_pylist() if isinstance(values, pa.Array | pa.ChunkedArray) else values
    bad = [BadRecord(i, (value or b"").decode("utf-8", "replace") if isinstance(value, bytes) else str(value or ""),
                     reason) for i, value in enumerate(raw)]
    return NormalizedPartitions(_offset_ranges(topics, partitions, offsets), provenance, FACT_SCHEMA.empty_table(),
                                bad, dead_letter_table(bad, provenance), sum(len(v or b"") for v in raw))


def _offset_ranges(topics: pa.Array, partitions: np.ndarray, offsets: np.ndarray) -> list[tuple[str, int, int, int]]:
    """(topic, partition, first offset, last offset) of each topic-partition, sorted."""
    if not len(offsets):
        return []
    encoded = topics.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    keys = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64) << 32 | partitions.astype(np.int64)
    unique, which = np.unique(keys, return_inverse=True)
    first = np.full(len(unique), np.iinfo(np.int64).max)
    last = np.full(len(unique), np.iinfo(np.int64).min)
    np.minimum.at(first, which, offsets)
    np.maximum.at(last, which, offsets)
    return sorted((names[int(key >> 32)], int(key & 0xFFFFFFFF), int(a), int(b))
                  for key, a, b in zip(unique, first, last, strict=True))
