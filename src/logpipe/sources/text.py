"""What the sources that read text (syslog, files) share: bytes to UTF-8 columns, regular expressions
to columns, and the reason column of rows they could not read."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def as_text(messages: pa.Array, what: str) -> tuple[pa.Array, pa.Array, list[tuple[int, str]]]:
    """The messages as UTF-8 strings, and as raw text; one that is not valid UTF-8 is null in the
    first, refused (``what: not valid UTF-8``), and kept in the second with its other bytes as
    escapes (``\\xff``)."""
    if pa.types.is_string(messages.type) or pa.types.is_large_string(messages.type):
        return messages, messages, []
    try:
        text = pc.cast(messages, pa.string())
        return text, text, []
    except pa.ArrowInvalid:
        values, raws, bad = [], [], []
        for i, value in enumerate(messages.to_pylist()):
            try:
                values.append(None if value is None else value.decode("utf-8"))
                raws.append(values[-1])
            except UnicodeDecodeError:
                values.append(None)
                raws.append(value.decode("utf-8", "backslashreplace"))
                bad.append((i, f"{what}: not valid UTF-8"))
        return pa.array(values, pa.string()), pa.array(raws, pa.string()), bad


def groups(text: pa.Array, pattern: str) -> dict[str, pa.Array]:
    """Each named group of ``pattern`` as a column, null where the text does not match."""
    matched = pc.extract_regex(text, pattern)
    return {matched.type.field(i).name: column for i, column in enumerate(matched.flatten())}


def empty_to_null(column: pa.Array, nil: str = "") -> pa.Array:
    return pc.if_else(pc.equal(column, nil), None, column)


def reason_column(n: int, bad: list[tuple[int, str]]) -> pa.Array | None:
    """A row's first reason (position, reason) as a column, null for rows without; None when none has one."""
    if not bad:
        return None
    reason_of: dict[int, str] = {}
    for row, reason in bad:
        reason_of.setdefault(row, reason)
    rows = sorted(reason_of)
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(pa.nulls(n, pa.string()), pa.array(mask),
                                pa.array([reason_of[row] for row in rows], pa.string()))


def string_map(n: int, columns: dict[str, pa.Array], extra: tuple[np.ndarray, list[str], list[str]] | None = None
               ) -> pa.Array:
    """A map of strings per row: each named column where it is not null, and ``extra`` (rows, keys,
    values) entries; built as columns, ordered by row."""
    rows, keys, values = [], [], []
    for name, column in columns.items():
        present = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))
        rows.append(present)
        keys.append(pa.repeat(pa.scalar(name), len(present)).cast(pa.string()))
        values.append(column.drop_null().cast(pa.string()))
    if extra is not None:
        rows.append(np.asarray(extra[0], dtype=np.int64))
        keys.append(pa.array(extra[1], pa.string()))
        values.append(pa.array(extra[2], pa.string()))
    all_rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    order = pa.array(np.argsort(all_rows, kind="stable"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(all_rows, minlength=n), out=offsets[1:])
    empty = pa.array([], pa.string())
    return pa.MapArray.from_arrays(pa.array(offsets), pa.concat_arrays(keys).take(order) if keys else empty,
                                   pa.concat_arrays(values).take(order) if values else empty)
