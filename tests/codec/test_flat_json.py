"""The flat-object fast path reads exactly what pyarrow's general JSON reader reads, or declines."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.json as pj
import pytest

from logpipe.codec.flat_json import decode_flat
from logpipe.codec.ndjson import decode_ndjson, encode_ndjson, joined_lines
from logpipe.codec.schema import WIRE_SCHEMA
from logpipe.simulator.generator import TrafficGenerator


def _general_reader(payload: bytes) -> pa.Table:
    options = pj.ParseOptions(explicit_schema=WIRE_SCHEMA, unexpected_field_behavior="infer")
    return pj.read_json(pa.BufferReader(payload), parse_options=options).combine_chunks()


def _same_as_general_reader(payload: bytes) -> pa.Table:
    flat = decode_flat(payload)
    assert flat is not None, "the fast path declined a flat batch of known fields"
    expected = _general_reader(payload)
    assert flat.schema == expected.schema
    assert flat.to_pylist() == expected.to_pylist()
    return flat


def test_simulated_batches_decode_as_the_general_reader_decodes_them():
    generator = TrafficGenerator(seed=3)
    now = time.time()
    table = generator.generate(20_000, now - 1, now)
    payload = encode_ndjson(table)
    flat = _same_as_general_reader(payload)
    assert flat.num_rows == table.num_rows
    traces = [m for m in flat.column("message").to_pylist() if "\n" in m]
    assert traces, "app errors carry multi-line stack traces, escaped on the wire"


def test_escapes_unicode_nulls_absent_fields_and_spacing():
    lines = [
        '{"event_id":"a","ts":"2026-11-25T06:36:00.123Z","service":"auth","status":200,"latency_ms":1.5e1}',
        '{ "service" : "주문" , "message" : "line one\\nline \\"two\\"\\t\\\\ \\/ \\b\\f\\r" }',
        '{"service":"pay","message":"caf\\u00e9 \\u20ac \\ud83d\\ude00","bytes":-0,"latency_ms":-0.25}',
        '{"service":null,"status":null,"message":"","host":"h-1"}',
        '   ',
        '{}',
        '{"service":"x","latency_ms":7}\r',
    ]
    flat = _same_as_general_reader(("\n".join(lines) + "\n").encode())
    assert flat.num_rows == 6  # the blank line is not a record
    assert flat.column("message")[2].as_py() == "café € 😀"
    assert flat.column("service")[1].as_py() == "주문"
    assert flat.column("latency_ms").to_pylist()[:3] == [15.0, None, -0.25]
    assert flat.column("service")[3].as_py() is None


def _random_string(rng: random.Random) -> str:
    pieces = ["a", "Z", "7", " ", '"', "\\", "/", "\n", "\t", "\x01", "é", "€", "😀", "{", ":", ","]
    weights = [30, 10, 10, 8, 3, 3, 2, 2, 1, 1, 2, 1, 1, 2, 2, 2]
    return "".join(rng.choices(pieces, weights, k=rng.choice([0, 1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 40])))


def test_random_lines_at_every_alignment_and_in_any_field_order_decode_as_the_general_reader():
    """The scan reads eight bytes at a time and predicts each line's next key from the line before;
    values of every length at every offset, keys in shifting orders and subsets, and a batch that
    ends at every offset of a word must still read exactly as pyarrow's reader reads them."""
    rng = random.Random(8)
    strings = [n for n, t in zip(WIRE_SCHEMA.names, WIRE_SCHEMA.types, strict=True) if t == pa.string()]
    lines = []
    for i in range(600):
        fields = rng.sample(strings, rng.randint(0, len(strings))) if i % 3 else strings  # runs of one order
        record = {name: _random_string(rng) for name in fields}
        if rng.random() < 0.3:
            record["status"] = rng.choice([0, 200, 503, None])
        if rng.random() < 0.3:
            record["latency_ms"] = rng.choice([0.5, 12, -3.25e2])
        text = json.dumps(record, ensure_ascii=rng.random() < 0.5)
        lines.append(text if rng.random() < 0.8 else text.replace(", ", ",").replace(": ", ":"))
    payload = ("\n".join(lines) + "\n").encode()
    _same_as_general_reader(payload)
    for cut in range(1, 17):  # the last line ends at every offset of the last word
        _same_as_general_reader(b'{"message":"' + b"m" * cut + b'"}')
        _same_as_general_reader(b'{"service":"s","host":"' + b"h" * cut + b'","region":"r"}\n')


def test_a_batch_without_a_final_newline_or_with_none_at_all():
    _same_as_general_reader(b'{"service":"a"}\n{"service":"b"}')
    assert decode_flat(b"").num_rows == 0


@pytest.mark.parametrize("line", [
    '{"service":"a","region_code":"eu"}',  # a field not in the schema
    '{"service":"a","attributes":{"k":"v"}}',  # a nested value
    '{"service":["a"]}',
    '{"service":5}',  # a number where a string belongs
    '{"status":"200"}',  # a string where a number belongs
    '{"status":200.5}',  # a fraction in an integer field
    '{"status":true}',
    '{"service":"a","service":"b"}',  # the same key twice
    '{"service":"a\\x"}',  # an escape JSON does not have
    '{"service":"\\ud800"}',  # half a surrogate pair
    '{"service":"\\u12"}',
    '{"service":"a\tb"}',  # a raw control character inside a string
    '{"service":"a"} trailing',
    '{"service":"a"',
    '{"service":"a",}',
    '{"status":01}',
    '{"status":-}',
    '{"status":1e}',
    '{"status":99999999999999999999999}',  # beyond 64 bits
    '["service"]',
    '"service"',
    '{"serv\\u0069ce":"a"}',  # an escaped key
    '{"service":nul}',
])
def test_anything_else_is_left_to_the_general_reader(line: str):
    payload = ('{"service":"ok"}\n' + line + "\n").encode()
    assert decode_flat(payload) is None
    decoded = decode_ndjson(payload)  # and the general paths still read or reject it as before
    assert decoded.record_count == 2


@pytest.mark.parametrize(("known", "unknown", "value"), [
    ("latency_ms", "latency_mx", "1"), ("client_ip", "client_iq", '"x"'), ("endpoint", "endpoints", '"x"'),
    ("trace_id", "trace_ie", '"x"'), ("user_id", "user_i", '"x"'), ("host", "hosT", '"x"')])
def test_a_key_like_the_one_the_line_before_predicts_is_not_taken_for_it(known: str, unknown: str, value: str):
    line = '{{"service":"a","{}":{}}}\n'
    payload = (line.format(known, value) * 2 + line.format(unknown, value) + line.format(known, value) * 2).encode()
    assert decode_flat(payload) is None
    assert decode_flat((line.format(known, value) * 5).encode()).num_rows == 5


@pytest.mark.parametrize("offset", range(17))
def test_a_raw_control_character_or_invalid_utf8_anywhere_in_a_long_string_is_declined(offset: int):
    for bad in (b"\x01", b"\t", b"\xff", b"\xc3"):
        assert decode_flat(b'{"message":"' + b"x" * offset + bad + b"y" * 20 + b'"}\n') is None, (offset, bad)
    text = "x" * offset + "é" + "y" * 20
    assert decode_flat(json.dumps({"message": text}, ensure_ascii=False).encode()).column("message")[0].as_py() == text


def test_bytes_that_are_not_utf8_are_left_to_the_general_reader():
    assert decode_flat(b'{"service":"a\xff"}\n') is None
    assert decode_flat(b'{"service":"\xc3\xa9"}\n').column("service").to_pylist() == ["é"]


def test_unknown_fields_are_still_kept_through_decode_ndjson():
    payload = json.dumps({"service": "a", "ts": "2026-11-25T06:36:00Z", "tenant": "t1"}).encode() + b"\n"
    decoded = decode_ndjson(payload)
    assert decoded.table.column("tenant").to_pylist() == ["t1"]


def test_a_process_that_only_encodes_does_not_load_numba():
    """numba costs a process about 140 MB; load generators and producers only encode."""
    code = ("import sys, time; from logpipe.simulator.generator import TrafficGenerator; "
            "from logpipe.codec.ndjson import encode_ndjson; "
            "encode_ndjson(TrafficGenerator(seed=1).generate(100, time.time() - 1, time.time())); "
            "print('numba' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"


def test_polled_values_are_joined_as_they_are_only_when_each_is_one_non_empty_line():
    assert joined_lines([b'{"a":1}', b"x"]) == b'{"a":1}\nx\n'
    assert joined_lines([]) == b""
    rng = random.Random(5)
    for _ in range(2_000):
        values = [rng.choice([b"", b"\n", b"a", b"ab", b"a\nb", b"abc\n", b"\nabc", b"x" * 9, None])
                  for _ in range(rng.randint(1, 12))]
        framed = all(v and b"\n" not in v for v in values)
        assert (joined_lines(values) is not None) == framed, values
