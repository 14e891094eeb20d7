from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pyarrow as pa

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import TS_TYPE


def _lines(table: pa.Table) -> list[dict]:
    payload = encode_ndjson(table)
    assert payload.endswith(b"\n")
    return [orjson.loads(line) for line in payload.splitlines()]


def test_timestamps_are_iso_utc_with_exact_milliseconds():
    epoch_ms = [0, 5, 999, 1_000, 1_795_600_000_123, 1_795_600_000_120, 1_795_600_059_999, -1]
    table = pa.table({"ts": pa.array(epoch_ms, pa.int64()).cast(TS_TYPE), "service": ["a"] * len(epoch_ms)})
    expected = [datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for ms in epoch_ms]
    assert [line["ts"] for line in _lines(table)] == expected
    assert expected[-1] == "1969-12-31T23:59:59.999Z"


def test_strings_needing_escapes_round_trip_and_the_others_are_untouched():
    messages = ['plain', 'say "hi"', "back\\slash", "two\nlines\r\n", "tab\there", "bell\x07", "é ü 日本 🚀", None,
                ""]
    table = pa.table({"service": ["auth"] * len(messages), "message": messages})
    decoded = [line["message"] for line in _lines(table)]
    # control characters JSON cannot carry verbatim (other than \n \r \t) become spaces
    assert decoded == ['plain', 'say "hi"', "back\\slash", "two\nlines\r\n", "tab\there", "bell ", "é ü 日本 🚀", "",
                       ""]


def test_a_batch_without_any_escapes_is_valid_json_too():
    table = pa.table({"service": ["auth", "pay"], "status": [200, 503], "latency_ms": [1.5, None]})
    assert _lines(table) == [{"service": "auth", "status": 200, "latency_ms": 1.5},
                             {"service": "pay", "status": 503, "latency_ms": 0}]


def test_dictionary_encoded_columns_encode_exactly_as_their_values():
    """The simulator hands its vocabulary columns over dictionary-encoded; each distinct value is
    rendered once, so the bytes must be those of the plain column, escapes and nulls included."""
    vocabulary = pa.array(['say "hi"', "plain", None, "back\\slash"])
    indices = [1, 0, 3, 2, 1, 1]
    plain = {"service": pa.array(["auth", "pay", "auth", "pay", "auth", "pay"]),
             "message": vocabulary.take(pa.array(indices))}
    dictionary = dict(plain, message=pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), vocabulary))
    assert encode_ndjson(pa.table(dictionary)) == encode_ndjson(pa.table(plain))
    assert [line["message"] for line in _lines(pa.table(dictionary))] == [
        "plain", 'say "hi"', "back\\slash", "", "plain", "plain"]
    with_null_index = pa.DictionaryArray.from_arrays(pa.array([1, None, 0, 3, 2, 1], pa.int32()), vocabulary)
    assert [line["message"] for line in _lines(pa.table(dict(plain, message=with_null_index)))] == [
        "plain", "", 'say "hi"', "back\\slash", "", "plain"]
