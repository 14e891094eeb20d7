"""The types a producer sends each wire field with, derived from ``logpipe.events.WIRE_FIELDS``."""

from __future__ import annotations

import pyarrow as pa

from logpipe.events import WIRE_FIELDS, Wire

_WIRE_ARROW: dict[Wire, pa.DataType] = {
    Wire.STRING: pa.string(),
    Wire.INTEGER: pa.int64(),
    Wire.NUMBER: pa.float64(),
    Wire.TIMESTAMP: pa.string(),
}
# The types a well-behaved producer sends; the fast path reads exactly these.
WIRE_SCHEMA = pa.schema([(f.name, _WIRE_ARROW[f.wire]) for f in WIRE_FIELDS])
WIRE_NAMES = frozenset(WIRE_SCHEMA.names)
# Objects and arrays nested deeper than this are refused (a dead letter): unknown fields are kept as JSON
# text in ``attributes``, and deeper documents cost the decoder and the re-encoding without end.
MAX_DEPTH = 32
