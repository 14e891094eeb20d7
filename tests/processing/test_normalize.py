from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import orjson
import pyarrow as pa
import pytest

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import FACT_SCHEMA, Provenance
from logpipe.processing.normalize import normalize_messages, normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator

HTTP = Provenance("http")
NOW_MS = 1_767_326_400_000  # 2026-01-02T04:00:00Z: the records below are from around then


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    """Event times are judged against now (retention, clock skew): these records' now is fixed."""
    monkeypatch.setattr("logpipe.processing.normalize.current_ms", lambda: NOW_MS)


def _one(record: dict | str):
    line = record if isinstance(record, str) else json.dumps(record)  # orjson refuses integers past 64 bits
    return normalize_ndjson(line.encode() + b"\n", HTTP)


VALID = [
    ({"ts": "2026-01-02T03:04:05.678Z", "service": "auth", "status": 200, "latency_ms": 12.5},
     {"ts": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "service": "auth", "status": 200,
      "level": "INFO", "kind": "request", "latency_ms": 12.5}),
    ({"ts": "2026-01-02 03:04:05", "service": " Order ", "status": "503"},
     {"ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "service": "order", "status": 503, "level": "ERROR"}),
    ({"ts": "2026-01-02T12:00:00+09:00", "service": "pay", "status": 404},
     {"ts": datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC), "level": "WARN"}),
    ({"ts": 1767323045, "service": "notify"},
     {"ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "kind": "app_error", "status": 0}),
    ({"ts": 1767323045123, "service": "notify", "level": "warning", "method": "post"},
     {"ts": datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC), "level": "WARN", "method": "POST"}),
    ({"ts": "1767323045", "service": "x", "latency_ms": "7.25", "bytes": 10},
     {"ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "latency_ms": 7.25, "bytes": 10}),
    ({"ts": "2026-01-02T03:04Z", "service": "x", "region": "eu", "custom": 5, "tags": ["a"]},
     {"ts": datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "region": "eu",
      "attributes": [("custom", "5"), ("tags", '["a"]')]}),
    ({"event_id": "e-1", "ts": "2026-01-02T03:04:05Z", "service": "x", "message": "line1\nline2 \"q\""},
     {"event_id": "e-1", "message": "line1\nline2 \"q\""}),
]


@pytest.mark.parametrize(("record", "expected"), VALID)
def test_valid_and_edge_records(record, expected):
    result = _one(record)
    assert result.dead_letters == []
    row = result.facts.to_pylist()[0]
    for key, value in expected.items():
        if key == "attributes":
            assert sorted(row[key]) == sorted(value)
        else:
            assert row[key] == value, key
    assert row["event_id"]
    assert row["source"] == "http" and row["partition"] == -1


MALFORMED = [
    ('{"ts": "2026-01-02T03:04:05Z", "service": "x"', "invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ({"service": "x"}, "ts: missing"),
    ({"ts": "yesterday", "service": "x"}, "ts: unrecognized timestamp format"),
    ({"ts": 1, "service": "x"}, "ts: older than the retention"),
    ({"ts": "2026-01-02T04:10:00Z", "service": "x"}, "ts: further in the future"),
    ({"ts": "2025-11-01T00:00:00Z", "service": "x"}, "ts: older than the retention"),
    ({"ts": "2026-01-02T03:04:05Z", "service": ["x"]}, "service: list where a string belongs"),
    ({"ts": "2026-01-02T03:04:05Z", "service": {"a": 1}}, "service: dict where a string belongs"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "host": True}, "host: bool where a string belongs"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "a\nb"}, "service: holds a control character"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x" * 129}, "service: longer than 128 bytes"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "endpoint": "/" * 1025}, "endpoint: longer than 1024"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "trace_id": "t" * 257}, "trace_id: longer than 256"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "bytes": 2**64}, "bytes: not a whole number"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "bytes": -1}, "bytes: not a whole number"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "bytes": 1.5}, "bytes: not a whole number"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "latency_ms": 1e39}, "latency_ms: negative, not finite or past"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "status": 9007199254740993}, "status: not an HTTP status"),
    ('{"ts": "2026-01-02T03:04:05Z", "service": "x", "deep": ' + "[" * 40 + "]" * 40 + "}",
     "nested deeper than 32 levels"),
    ({"ts": "2026-01-02T03:04:05Z"}, "service: missing"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "status": 999}, "status: not an HTTP status"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "status": "abc"}, "status: not a number"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "latency_ms": -3}, "latency_ms: negative"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "level": "LOUD"}, "level: not one of"),
    ({"ts": "2026-01-02T03:04:05Z", "service": "x", "kind": "metric"}, "kind: not one of"),
]


@pytest.mark.parametrize(("record", "reason"), MALFORMED)
def test_malformed_records_become_dead_letters_with_reason(record, reason):
    result = _one(record)
    assert result.facts.num_rows == 0
    assert len(result.dead_letters) == 1
    bad = result.dead_letters[0]
    assert bad.reason.startswith(reason), bad.reason
    if isinstance(record, str):
        assert bad.raw == record
    else:
        assert json.loads(bad.raw) == record


def test_bad_records_do_not_take_the_batch_down_and_keep_their_positions():
    lines = [orjson.dumps({"ts": "2026-01-02T03:04:05Z", "service": "s", "event_id": str(i)}) for i in range(10)]
    lines[3] = b"{broken"
    lines[7] = orjson.dumps({"ts": "2026-01-02T03:04:05Z", "service": "s", "status": 42})
    result = normalize_ndjson(b"\n".join(lines) + b"\n", HTTP)
    assert result.facts["event_id"].to_pylist() == ["0", "1", "2", "4", "5", "6", "8", "9"]
    assert [b.index for b in result.dead_letters] == [3, 7]
    assert result.record_count == 10


def test_simulated_batches_round_trip_through_the_wire_format():
    table = TrafficGenerator(seed=1).generate(5_000, 1_767_000_000, 1_767_000_010)
    result = normalize_ndjson(encode_ndjson(table), Provenance("simulator"))
    assert result.dead_letters == []
    assert result.facts.schema == FACT_SCHEMA
    for name in table.column_names:
        assert result.facts[name].to_pylist() == table[name].to_pylist(), name


def test_low_cardinality_fields_come_out_as_dictionaries_of_their_normalized_distinct_values():
    records = [{"ts": "2026-01-02T03:04:05Z", "service": " Auth", "level": "warning", "method": "get"},
               {"ts": "2026-01-02T03:04:05Z", "service": "auth ", "level": "WARN", "method": "GET"},
               {"ts": "2026-01-02T03:04:05Z", "service": "AUTH", "status": 503, "method": None},
               {"ts": "2026-01-02T03:04:05Z", "service": "order", "level": "bogus"},
               {"ts": "2026-01-02T03:04:05Z", "service": "order", "level": "  ", "status": 404}]
    payload = b"".join(orjson.dumps(r) + b"\n" for r in records)
    result = normalize_messages(pa.array(["logs.auth", "logs.auth", "logs.auth", "logs.order", "logs.order"]),
                                np.zeros(5), np.arange(5), payload.split(b"\n")[:5])
    facts = result.facts
    assert facts.schema == FACT_SCHEMA
    assert [(b.index, b.reason.split(" (")[0]) for b in result.bad] == [(3, "level: not one of DEBUG, INFO, "
                                                                          "WARN, ERROR, FATAL")]
    assert facts["service"].to_pylist() == ["auth", "auth", "auth", "order"]
    assert facts["level"].to_pylist() == ["WARN", "WARN", "ERROR", "WARN"]  # alias, derived from status
    assert facts["method"].to_pylist() == ["GET", "GET", "", ""]
    assert facts["topic"].to_pylist() == ["logs.auth", "logs.auth", "logs.auth", "logs.order"]
    assert facts["source"].to_pylist() == ["kafka"] * 4
    for name in ("service", "method", "level"):  # one entry per distinct value, however it was sent
        dictionary = facts[name].chunk(0).dictionary.to_pylist()
        assert len(dictionary) == len(set(dictionary)), (name, dictionary)
    assert sorted(facts["service"].chunk(0).dictionary.to_pylist()) == ["auth", "order"]


def test_sub_millisecond_and_impossible_iso_timestamps_reject_only_their_own_row():
    values = pa.array([b'{"ts": "2026-01-01T10:00:00.123456+00:00", "service": "auth"}',
                       b'{"ts": "2026-13-45T10:00:00Z", "service": "auth"}',
                       b'{"ts": "2026-01-01T10:00:00.999999999Z", "service": "auth"}'])
    result = normalize_messages(pa.array(["logs.auth"] * 3), np.zeros(3), np.arange(3), values)
    assert [t.isoformat() for t in result.facts.column("ts").to_pylist()] == [
        "2026-01-01T10:00:00.123000+00:00", "2026-01-01T10:00:00.999000+00:00"]
    assert [(b.index, b.reason.split(" (")[0]) for b in result.bad] == [(1, "ts: not a valid date and time")]


def test_plain_utc_timestamps_read_the_same_as_through_the_general_parser():
    plain = [b'{"ts": "2026-01-01T10:00:00.123Z", "service": "a"}',
             b'{"ts": "2026-01-01T23:59:59.999999Z", "service": "a"}',
             b'{"ts": "2025-12-10T00:00:00.000Z", "service": "a"}']
    odd = b'{"ts": "2026-01-01 10:00:00+09:00", "service": "a"}'  # another shape: all rows take the general path
    fast = normalize_ndjson(b"\n".join(plain) + b"\n", HTTP)
    general = normalize_ndjson(b"\n".join([*plain, odd]) + b"\n", HTTP)
    assert fast.dead_letters == [] and general.dead_letters == []
    times = [t.isoformat() for t in fast.facts.column("ts").to_pylist()]
    assert times == ["2026-01-01T10:00:00.123000+00:00", "2026-01-01T23:59:59.999000+00:00",
                     "2025-12-10T00:00:00+00:00"]
    assert general.facts.column("ts").to_pylist()[:3] == fast.facts.column("ts").to_pylist()
    assert general.facts.column("ts").to_pylist()[3].isoformat() == "2026-01-01T01:00:00+00:00"


def test_partitions_normalized_together_give_each_row_and_dead_letter_its_own_origin():
    auth = [b'{"ts": "2026-01-02T00:00:00.000Z", "service": "auth"}',  # no event_id: named by its origin
            b'{"ts": "2026-01-02T00:00:01.000Z", "service": "auth", "event_id": "given"}']
    pay = [b'{"ts": "2026-13-45T00:00:00Z", "service": "pay"}',
           b'{"ts": "2026-01-02T00:00:02.000Z", "service": "pay"}']
    # interleaved as a poll returns them
    together = normalize_messages(pa.array(["logs.auth", "logs.pay", "logs.auth", "logs.pay"]),
                                  np.array([2, 0, 2, 0]), np.array([40, 7, 41, 8]),
                                  pa.array([auth[0], pay[0], auth[1], pay[1]]))
    facts = together.facts
    assert facts.column("event_id").to_pylist() == ["logs.auth:2:40", "given", "logs.pay:0:8"]
    assert list(zip(facts.column("topic").to_pylist(), facts.column("partition").to_pylist(),
                    facts.column("offset").to_pylist(), strict=True)) == [
        ("logs.auth", 2, 40), ("logs.auth", 2, 41), ("logs.pay", 0, 8)]
    dead = together.dead_letters.to_pylist()
    assert [(d["topic"], d["partition"], d["offset"]) for d in dead] == [("logs.pay", 0, 7)]
    assert together.ranges == [("logs.auth", 2, 40, 41), ("logs.pay", 0, 7, 8)]
    assert together.token == "logs.auth:2:40-41,logs.pay:0:7-8"
    alone = [normalize_messages(pa.array(["logs.auth"] * 2), np.array([2, 2]), np.array([40, 41]), pa.array(auth)),
             normalize_messages(pa.array(["logs.pay"] * 2), np.array([0, 0]), np.array([7, 8]), pa.array(pay))]
    same = pa.concat_tables([a.facts for a in alone])
    for name in ("event_id", "ts", "service", "topic", "partition", "offset"):
        assert same.column(name).to_pylist() == facts.column(name).to_pylist(), name


@pytest.mark.parametrize(("awkward", "fact_offsets", "bad_positions"), [
    ([], [100], [1]),
    ([b""], [100], [1, 2]),  # empty message
    ([None], [100], [1, 2]),  # tombstone
    ([b'{"ts": "2026-01-02T00:00:03.000Z",\n "service": "auth"}'], [100, 101], [2]),  # printed over two lines
    ([b"   "], [100], [1, 2]),  # whitespace only
])
def test_polled_bytes_and_an_arrow_column_give_the_same_rows(awkward, fact_offsets, bad_positions):
    """The Kafka processor hands over the values as polled (bytes), the Spark job as an Arrow column;
    both are one record per message, whatever the message holds."""
    values = [b'{"ts": "2026-01-02T00:00:00.000Z", "service": "auth"}', *awkward,
              b'{"ts": "2026-01-02T00:00:01.000Z", "service": "pay", "status": "oops"}']
    n = len(values)
    topics, partitions, offsets = pa.array(["logs.auth"] * n), np.zeros(n), np.arange(100, 100 + n)
    polled = normalize_messages(topics, partitions, offsets, values)
    column = normalize_messages(topics, partitions, offsets, pa.array(values, pa.binary()))
    assert polled.facts.drop_columns(["ingest_ts"]).equals(column.facts.drop_columns(["ingest_ts"]))
    assert [(b.index, b.reason) for b in polled.bad] == [(b.index, b.reason) for b in column.bad]
    assert polled.facts.column("offset").to_pylist() == fact_offsets
    assert [b.index for b in polled.bad] == bad_positions
    assert polled.dead_letters.column("offset").to_pylist() == [100 + p for p in bad_positions]


def test_derived_and_aliased_fields_in_a_mixed_batch():
    """Derivation and aliases apply row by row, also when only some rows of a batch need them."""
    records = [{"ts": 1767323045, "service": "a", "status": 200, "level": "warning"},
               {"ts": 1767323045, "service": "a", "status": 503},
               {"ts": 1767323045, "service": "a", "level": "info", "kind": "request", "status": 201},
               {"ts": 1767323045, "service": "a", "level": " ", "kind": ""}]
    payload = b"".join(orjson.dumps(r) + b"\n" for r in records)
    rows = normalize_ndjson(payload, HTTP).facts.to_pylist()
    assert [(r["level"], r["kind"]) for r in rows] == [("WARN", "request"), ("ERROR", "request"),
                                                     ("INFO", "request"), ("INFO", "app_error")]
    assert [r["attributes"] for r in rows] == [[]] * 4 and {r["source"] for r in rows} == {"http"}


def test_a_known_field_holding_a_list_of_only_nulls_is_a_dead_letter_with_its_reason():
    lines = [{"ts": NOW_MS / 1000, "service": "a", "status": [None, None]}, {"ts": NOW_MS / 1000, "service": "a",
                                                                           "status": 200}]
    normalized = normalize_ndjson(b"\n".join(orjson.dumps(line) for line in lines), Provenance("http"), NOW_MS)
    assert normalized.facts.column("status").to_pylist() == [200]
    assert [d.reason for d in normalized.dead_letters] == ["status: not a number (got '[null,null]')"]
