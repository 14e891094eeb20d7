"""Spans of a buffer (start, length) as Arrow strings: what the compiled readers of the sources (OTLP's
protobuf, the combined access-log format) find, copied out in one pass."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit


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


def strings(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None = None,
            as_hex: bool = False) -> pa.Array:
    """The spans as a string array (null where ``valid`` is False); ArrowInvalid when one is not UTF-8."""
    offsets, out = gather(data, np.ascontiguousarray(starts, dtype=np.int64),
                          np.ascontiguousarray(lengths, dtype=np.int64), as_hex)
    mask = None if valid is None else pa.array(valid).buffers()[1]
    nulls = 0 if valid is None else int(len(valid) - np.count_nonzero(valid))
    array = pa.StringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(out), mask, nulls)
    array.validate(full=True)
    return array
