"""The fact row of a service event log: the one definition of the event schema.

Everything else derives from ``FACT_FIELDS``: the Arrow schema the processor builds,
the JSON wire format producers send, and (proven equal by a test) the ClickHouse
column list in ``warehouse/sql/010_fact_log.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pyarrow as pa


class Wire(StrEnum):
    """How a field is written in the JSON wire format."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    TIMESTAMP = "timestamp"  # ISO 8601 string, or epoch seconds/milliseconds as a number
    OBJECT = "object"
    NONE = "none"  # set by the pipeline, never read from the wire


@dataclass(frozen=True)
class FactField:
    name: str
    arrow: pa.DataType
    clickhouse: str
    wire: Wire
    doc: str
    required: bool = False
    max_length: int | None = None  # bytes; a longer value is refused (a dead letter with its reason)


TS_TYPE = pa.timestamp("ms", tz="UTC")
# LowCardinality columns travel as Arrow dictionaries: the processor normalizes each distinct value
# once, and ClickHouse takes the dictionary as its own instead of hashing every row's string.
CATEGORY_TYPE = pa.dictionary(pa.int32(), pa.string())

FACT_FIELDS: tuple[FactField, ...] = (
    FactField("event_id", pa.string(), "String", Wire.STRING,
              "The event's id; generated when absent (from Kafka, topic:partition:offset).", max_length=256),
    FactField("ts", TS_TYPE, "DateTime64(3, 'UTC')", Wire.TIMESTAMP,
              "Event time: ISO 8601 (no zone: UTC) or epoch seconds, ms, us or ns.", required=True),
    FactField("ingest_ts", TS_TYPE, "DateTime64(3, 'UTC')", Wire.NONE,
              "When the processor normalized the event."),
    FactField("service", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING,
              "Emitting service, lower-cased (auth, order, payment, notify, ...).", required=True, max_length=128),
    FactField("kind", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING,
              "request, app_error or system (syslog and the like); derived from status when absent.",
              max_length=32),
    FactField("level", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING,
              "DEBUG, INFO, WARN, ERROR or FATAL; derived from status when absent.", max_length=32),
    FactField("method", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING, "HTTP method, upper-cased.",
              max_length=32),
    FactField("endpoint", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING,
              "Route template, e.g. /v1/orders/{id}.", max_length=1024),
    FactField("status", pa.uint16(), "UInt16", Wire.INTEGER, "HTTP status 100-599; 0 for non-request logs."),
    FactField("latency_ms", pa.float32(), "Float32", Wire.NUMBER, "Request latency in milliseconds, >= 0."),
    FactField("bytes", pa.uint64(), "UInt64", Wire.INTEGER, "Response size in bytes."),
    FactField("user_id", pa.string(), "String", Wire.STRING, "End user id.", max_length=256),
    FactField("trace_id", pa.string(), "String", Wire.STRING, "Distributed trace id.", max_length=256),
    FactField("client_ip", pa.string(), "String", Wire.STRING, "Client IP address.", max_length=64),
    FactField("host", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING, "Host or pod that served the request.",
              max_length=255),
    FactField("region", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING, "Deployment region.", max_length=64),
    FactField("error_code", CATEGORY_TYPE, "LowCardinality(String)", Wire.STRING, "Application error code, if any.",
              max_length=128),
    FactField("message", pa.string(), "String", Wire.STRING, "Log message; may hold a multi-line stack trace."),
    FactField("attributes", pa.map_(pa.string(), pa.string()), "Map(String, String)", Wire.OBJECT,
              "Fields not in this schema, kept as strings."),
    FactField("source", CATEGORY_TYPE, "LowCardinality(String)", Wire.NONE,
              "Where the event entered logpipe: simulator, http, otlp, syslog, file or kafka."),
    FactField("sender", CATEGORY_TYPE, "LowCardinality(String)", Wire.NONE,
              "Name of the named ingest token that sent the event (the tokens file); empty otherwise."),
    FactField("topic", CATEGORY_TYPE, "LowCardinality(String)", Wire.NONE, "Kafka topic; empty without Kafka."),
    FactField("partition", pa.int32(), "Int32", Wire.NONE, "Kafka partition; -1 without Kafka."),
    FactField("offset", pa.int64(), "Int64", Wire.NONE, "Kafka offset; -1 without Kafka."),
)

FACT_SCHEMA: pa.Schema = pa.schema([pa.field(f.name, f.arrow, nullable=False) for f in FACT_FIELDS])
FIELDS_BY_NAME: dict[str, FactField] = {f.name: f for f in FACT_FIELDS}
# Fields a producer may send; the rest are stamped by the pipeline.
WIRE_FIELDS: tuple[FactField, ...] = tuple(f for f in FACT_FIELDS if f.wire not in (Wire.NONE, Wire.OBJECT))

DEAD_LETTER_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("ingest_ts", TS_TYPE, "DateTime64(3, 'UTC')"),
    ("source", pa.string(), "LowCardinality(String)"),
    ("topic", pa.string(), "LowCardinality(String)"),
    ("partition", pa.int32(), "Int32"),
    ("offset", pa.int64(), "Int64"),
    ("reason", pa.string(), "String"),
    ("raw", pa.string(), "String"),
)
DEAD_LETTER_SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, arrow, nullable=False) for name, arrow, _ in DEAD_LETTER_FIELDS]
)

# What became of a replayed dead letter (analytics.dead_letter_replay; processing/replay.py).
DEAD_LETTER_REPLAY_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("id", pa.uint64(), "UInt64"),
    ("ts", TS_TYPE, "DateTime64(3, 'UTC')"),
    ("state", pa.string(), "LowCardinality(String)"),
    ("key", pa.string(), "String"),
    ("source", pa.string(), "LowCardinality(String)"),
    ("raw", pa.string(), "String"),
    ("copies", pa.uint32(), "UInt32"),
    ("reason", pa.string(), "String"),
)
DEAD_LETTER_REPLAY_SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, arrow, nullable=False) for name, arrow, _ in DEAD_LETTER_REPLAY_FIELDS]
)

# Every alert transition the watchdog makes (firing, resolved), as stored in analytics.alerts.
ALERT_FIELDS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("ts", TS_TYPE, "DateTime64(3, 'UTC')"),
    ("rule", pa.string(), "LowCardinality(String)"),
    ("subject", pa.string(), "String"),
    ("state", pa.string(), "LowCardinality(String)"),
    ("severity", pa.string(), "LowCardinality(String)"),
    ("value", pa.float64(), "Float64"),
    ("threshold", pa.float64(), "Float64"),
    ("since", TS_TYPE, "DateTime64(3, 'UTC')"),
    ("message", pa.string(), "String"),
)
ALERT_SCHEMA: pa.Schema = pa.schema([pa.field(name, arrow, nullable=False) for name, arrow, _ in ALERT_FIELDS])

# Identifiers whose values must hold no control character (a newline in a service name would forge
# log lines and dashboard menus); the message may hold any, a stack trace's newlines among them.
NO_CONTROL_CHARACTERS: frozenset[str] = frozenset(f.name for f in FACT_FIELDS
                                                  if f.max_length is not None)

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
KINDS: tuple[str, ...] = ("request", "app_error", "system")


@dataclass(frozen=True)
class Provenance:
    """Where a batch came from; Kafka offsets are per record, the rest per batch unless a batch
    spans several topic-partitions (``topics`` and ``partitions`` per record then)."""

    source: str
    topic: str = ""
    partition: int = -1
    offsets: np.ndarray | None = None  # per record (indexed by record position)
    topics: pa.Array | None = None
    partitions: np.ndarray | None = None
    sender: str = ""
    senders: pa.Array | None = None  # per record, where records of several senders share a batch (Kafka)
    sources: pa.Array | None = None  # per record, where records of several sources share a batch (Kafka)

    def topic_column(self, positions: np.ndarray) -> pa.Array:
        """The topic of each record at ``positions``."""
        if self.topics is None:
            return pa.repeat(pa.scalar(self.topic, pa.string()), len(positions))
        return self.topics.take(pa.array(positions, type=pa.int64()))

    def sender_column(self, positions: np.ndarray) -> pa.Array:
        if self.senders is None:
            return pa.repeat(pa.scalar(self.sender, pa.string()), len(positions))
        return self.senders.take(pa.array(positions, type=pa.int64()))

    def source_column(self, positions: np.ndarray) -> pa.Array:
        if self.sources is None:
            return pa.repeat(pa.scalar(self.source, pa.string()), len(positions))
        return self.sources.take(pa.array(positions, type=pa.int64()))

    def partition_column(self, positions: np.ndarray) -> np.ndarray:
        if self.partitions is None:
            return np.full(len(positions), self.partition, dtype=np.int32)
        return self.partitions[positions].astype(np.int32)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def random_hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.StringArray:
    """n random lowercase hex strings of 2*nbytes characters, built straight into Arrow buffers."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, nbytes * 2), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 0x0F]
    offsets = np.arange(0, n * nbytes * 2 + 1, nbytes * 2, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def fields_table() -> str:
    """The README's table of the wire fields, generated from ``FACT_FIELDS``."""
    lines = ["| Field | JSON | Limit | What |", "| --- | --- | --- | --- |"]
    for f in WIRE_FIELDS:
        limit = f"{f.max_length} bytes" if f.max_length else ""
        required = " Required." if f.required else ""
        lines.append(f"| `{f.name}` | {f.wire.value} | {limit} | {f.doc}{required} |")
    return "\n".join(lines)
