"""Access-log and plain lines to columns, and stack traces joined into one record."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_records
from logpipe.sources.files.parse import joined_records, nginx_records, plain_records

PYTHON_TRACE = """2026-12-01 10:00:00,123 ERROR payment failed
Traceback (most recent call last):
  File "/app/pay.py", line 12, in charge
    raise ValueError("card declined")
ValueError: card declined"""
JAVA_TRACE = """2026-12-01 10:00:01,000 ERROR [main] order service crashed
java.lang.IllegalStateException: no stock
\tat com.shop.Order.reserve(Order.java:42)
\tat com.shop.Main.main(Main.java:7)
Caused by: java.io.IOException: disk
\tat com.shop.Store.write(Store.java:9)"""
GO_TRACE = """2026-12-01T10:00:02Z panic in handler
panic: runtime error: index out of range [3] with length 3

goroutine 1 [running]:
main.main()
\t/app/main.go:8 +0x1d"""


def test_combined_and_common_access_lines():
    lines = [b'203.0.113.9 - alice [01/Dec/2026:10:00:00 +0100] "GET /api/items?page=2 HTTP/1.1" 200 512 '
             b'"https://shop.example/" "Mozilla/5.0 (X11)" 0.042',
             b'203.0.113.10 - - [01/Dec/2026:10:00:01 +0100] "POST /api/pay HTTP/2.0" 503 - rt=1.5',
             b'203.0.113.11 - - [01/Dec/2026:10:00:02 +0100] "\\x16\\x03\\x01" 400 0 "-" "-"']
    rows = nginx_records(pa.array(lines, pa.binary())).table.to_pylist()
    first, second, probe = rows
    assert (first["client_ip"], first["user_id"], first["method"], first["endpoint"], first["status"],
            first["bytes"], first["latency_ms"]) == ("203.0.113.9", "alice", "GET", "/api/items", 200, 512, 42.0)
    assert dict(first["attributes"]) == {"protocol": "HTTP/1.1", "query": "page=2", "referer": "https://shop.example/",
                                         "user_agent": "Mozilla/5.0 (X11)"}
    assert first["ts"].isoformat() == "2026-12-01T09:00:00+00:00"
    assert (second["status"], second["bytes"], second["latency_ms"], second["user_id"]) == (503, 0, 1500.0, None)
    assert probe["method"] is None and dict(probe["attributes"]) == {"request": "\\x16\\x03\\x01"}


def test_a_line_that_is_no_access_log_line_is_a_dead_letter():
    bad_time = b'1.2.3.4 - - [99/Nop/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1'
    records = nginx_records(pa.array([b"not an access line", bad_time], pa.binary()))
    normalized = normalize_records(records, Provenance("file"))
    assert [(b.index, b.reason, b.raw) for b in normalized.dead_letters] == [
        (0, "nginx: not a combined or common access log line", "not an access line"),
        (1, "nginx: time is not dd/Mon/yyyy:HH:MM:SS +zone",
         '1.2.3.4 - - [99/Nop/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1')]


def test_python_java_and_go_stack_traces_join_into_one_app_error_each():
    text = "\n".join([PYTHON_TRACE, "2026-12-01 10:00:00,500 INFO all good", JAVA_TRACE, GO_TRACE])
    lines = pa.array(text.encode().split(b"\n"), pa.binary())
    records = joined_records(lines, r"^\d{4}-\d{2}-\d{2}")
    assert len(records) == 4
    rows = plain_records(records, "shop", utc_offset_s=0).table.to_pylist()
    assert [row["message"] for row in rows] == [PYTHON_TRACE, "2026-12-01 10:00:00,500 INFO all good", JAVA_TRACE,
                                                GO_TRACE]
    assert [(row["kind"], row["level"]) for row in rows] == [("app_error", "ERROR"), ("system", "INFO"),
                                                             ("app_error", "ERROR"), ("app_error", "ERROR")]
    assert [row["ts"] for row in rows] == ["2026-12-01T10:00:00.123+00:00", "2026-12-01T10:00:00.500+00:00",
                                           "2026-12-01T10:00:01.000+00:00", "2026-12-01T10:00:02Z"]


def test_plain_lines_keep_their_text_and_read_the_zone_of_the_source():
    rows = plain_records(pa.array(["2026-12-01 12:00:00 WARNING low disk", "no time, no level"]), "app",
                         utc_offset_s=3600, read_ms=1_764_590_400_000).table.to_pylist()
    assert rows[0]["ts"] == "2026-12-01T12:00:00+01:00" and rows[0]["level"] == "WARN"
    assert rows[1]["ts"] == "2025-12-01T12:00:00.000Z" and rows[1]["level"] == "INFO"
    assert rows[1]["message"] == "no time, no level"


_PIECES = st.sampled_from(['1.2.3.4', '-', 'bob', ' ', '  ', '\t', '\x0b', '[', ']', '[01/Dec/2026:10:00:00 +0000]',
                           '"', '\\', '\\"', 'GET /a?b=1 HTTP/1.1', '200', '404', '12', '7.5', 'rt=', '.', 'é', 'x',
                           '"-"'])
_TEMPLATE = ['1.2.3.4', ' ', '-', ' ', 'bob', ' ', '[01/Dec/2026:10:00:00 +0000]', ' ', '"', 'GET /a?b=1 HTTP/1.1', '"',
             ' ', '200', ' ', '12', ' ', '"-"', ' ', '"', 'Mozilla "x"', '"', ' ', 'rt=', '7.5', ' ', 'x']


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_TEMPLATE)), _PIECES, st.booleans()), max_size=4),
       st.integers(10, len(_TEMPLATE)))
def test_the_compiled_reader_of_access_lines_finds_what_the_expression_finds(edits, length):
    """Lines near the combined format, edited by inserting or replacing pieces (quotes, escapes,
    brackets, spaces of every kind): the compiled reader's fields are the regular expression's."""
    from logpipe.sources.files import combined
    from logpipe.sources.files.parse import _COMBINED
    from logpipe.sources.text import groups

    pieces = list(_TEMPLATE[:length])
    for at, piece, replace in edits:
        at = min(at, len(pieces))
        pieces[at:at + int(replace)] = [piece]
    text = pa.array(["".join(pieces), "".join(_TEMPLATE)], pa.string())
    found, _ = combined.fields(text)
    expected = groups(text, _COMBINED)
    assert {k: v.to_pylist() for k, v in found.items()} == {k: v.to_pylist() for k, v in expected.items()}


def test_the_file_source_table_in_the_docs_is_the_config_model():
    """docs/sources.md lists every FileSourceConfig field, in order, with its default."""
    import dataclasses
    import re
    from pathlib import Path

    from logpipe.sources.files.config import FileSourceConfig

    doc = (Path(__file__).parents[3] / "docs" / "sources.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", doc, re.M)
    documented = {name: default.strip() for name, default in rows if name in FileSourceConfig.__dataclass_fields__}
    fields = dataclasses.fields(FileSourceConfig)
    assert list(documented) == [f.name for f in fields]
    for f in fields:
        if f.default not in (dataclasses.MISSING, None, ""):  # else: (required), (none), (empty), prose
            assert documented[f.name] == f"`{f.default}`", f.name
