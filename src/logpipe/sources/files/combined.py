"""The combined and common access-log formats read in machine code (numba): the fields of
``parse._COMBINED``, as RE2 matches them, for every line in one pass over the chunk's bytes. The
expression's captures cost 2.7-2.9 us a line, most of the file thread's time; a property test holds
this reader to the expression.

RE2's reading, followed here: ``\\S`` is anything but ``[\\t\\n\\f\\r ]``, ``\\d`` is ``[0-9]``, ``.`` is
anything but a newline, and each optional part is taken where it matches (what follows it always
matches), so a line's fields are found left to right without going back.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from logpipe.sources.spans import strings

FIELDS = ("client_ip", "user", "time", "request", "status", "bytes", "referer", "agent", "rt", "rest")


@njit(cache=True, nogil=True, inline="always")
def _space(byte: int) -> bool:
    return byte == 32 or byte == 9 or byte == 10 or byte == 12 or byte == 13


@njit(cache=True, nogil=True, inline="always")
def _digit(byte: int) -> bool:
    return 48 <= byte <= 57


@njit(cache=True, nogil=True, inline="always")
def _token(data: np.ndarray, at: int, end: int) -> int:
    """The end of ``\\S+`` followed by one space at ``at``; -1 when there is none."""
    stop = at
    while stop < end and not _space(data[stop]):
        stop += 1
    return stop if stop > at and stop < end and data[stop] == 32 else -1


@njit(cache=True, nogil=True, inline="always")
def _quoted(data: np.ndarray, at: int, end: int) -> int:
    """The position after ``"(?:[^"\\\\]|\\\\.)*"`` at ``at``; -1 when it does not match."""
    if at >= end or data[at] != 34:
        return -1
    at += 1
    while at < end:
        byte = data[at]
        if byte == 34:
            return at + 1
        if byte == 92:
            if at + 1 >= end or data[at + 1] == 10:
                return -1
            at += 2
        else:
            at += 1
    return -1


@njit(cache=True, nogil=True)
def _scan(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Each line's fields as (start, length) pairs in ``spans``; whether the line matched."""
    n = len(offsets) - 1
    matched = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if not valid[i]:
            continue
        at, end = offsets[i], offsets[i + 1]
        for f in range(20):
            spans[i, f] = 0
        ip_end = _token(data, at, end)
        if ip_end < 0:
            continue
        ident_end = _token(data, ip_end + 1, end)
        if ident_end < 0:
            continue
        user_end = _token(data, ident_end + 1, end)
        if user_end < 0:
            continue
        at = user_end + 1
        if at >= end or data[at] != 91:  # [time]
            continue
        close = at + 1
        while close < end and data[close] != 93:
            close += 1
        if close == at + 1 or close + 1 >= end or data[close + 1] != 32:
            continue
        time_start, time_end = at + 1, close
        request_start = close + 3
        request_end = _quoted(data, close + 2, end)
        if request_end < 0:
            continue
        at = request_end  # " 200 1234"
        if at + 5 > end or data[at] != 32 or not (_digit(data[at + 1]) and _digit(data[at + 2]) and
                                                  _digit(data[at + 3])) or data[at + 4] != 32:
            continue
        status_start = at + 1
        at += 5
        bytes_start = at
        if at < end and _digit(data[at]):
            while at < end and _digit(data[at]):
                at += 1
        elif at < end and data[at] == 45:
            at += 1
        else:
            continue
        bytes_end = at
        referer_start = referer_end = agent_start = agent_end = at
        if at < end and data[at] == 32:  # (?: "referer" "agent")?
            referer_stop = _quoted(data, at + 1, end)
            if referer_stop >= 0 and referer_stop < end and data[referer_stop] == 32:
                agent_stop = _quoted(data, referer_stop + 1, end)
                if agent_stop >= 0:
                    referer_start, referer_end = at + 2, referer_stop - 1
                    agent_start, agent_end = referer_stop + 2, agent_stop - 1
                    at = agent_stop
        rt_start = rt_end = at
        if at < end and data[at] == 32:  # (?: (?:rt=)?(\d+(?:\.\d+)?))?
            digits = -1
            if at + 4 < end and data[at + 1] == 114 and data[at + 2] == 116 and data[at + 3] == 61 and \
                    _digit(data[at + 4]):
                digits = at + 4
            elif at + 1 < end and _digit(data[at + 1]):
                digits = at + 1
            if digits >= 0:
                stop = digits
                while stop < end and _digit(data[stop]):
                    stop += 1
                if stop + 1 < end and data[stop] == 46 and _digit(data[stop + 1]):
                    stop += 1
                    while stop < end and _digit(data[stop]):
                        stop += 1
                rt_start, rt_end = digits, stop
                at = stop
        rest = at
        while rest < end and data[rest] != 10:
            rest += 1
        if rest != end:  # .*$ cannot cross a newline
            continue
        starts = (offsets[i], ident_end + 1, time_start, request_start, status_start, bytes_start, referer_start,
                  agent_start, rt_start, at)
        ends = (ip_end, user_end, time_end, request_end - 1, status_start + 3, bytes_end, referer_end, agent_end,
                rt_end, end)
        for f in range(10):
            spans[i, 2 * f], spans[i, 2 * f + 1] = starts[f], ends[f] - starts[f]
        matched[i] = True
    return matched


def fields(text: pa.Array) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The fields of each line of ``text`` (a string array), null where the line does not match, and
    which lines matched."""
    text = text.cast(pa.string())
    n = len(text)
    buffers = text.buffers()
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[text.offset:text.offset + n + 1].astype(np.int64)
    valid = text.is_valid().to_numpy(zero_copy_only=False)
    spans = np.zeros((n, 20), dtype=np.int64)
    matched = _scan(data, offsets, valid, spans)
    return {name: strings(data, spans[:, 2 * f], spans[:, 2 * f + 1], matched)
            for f, name in enumerate(FIELDS)}, matched


def prepare() -> None:
    """Load the reader (on a fresh machine, compile it: seconds, then cached) before a first chunk."""
    fields(pa.array(['1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "a" 0.1', "x"]))
