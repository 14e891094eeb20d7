"""The engine contract: dead letters then facts, retries with the same token, a permanent rejection split
down to the rows the store refuses, and nothing acknowledged that was not written."""

from __future__ import annotations

import time

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import DEAD_LETTER_SCHEMA, Provenance
from logpipe.processing.contract import RetryPolicy, SinkError, Sinks, write_batch
from logpipe.processing.normalize import normalize_ndjson
from logpipe.processing.sinks import dead_letter_sink, fact_sink
from logpipe.simulator.generator import TrafficGenerator

POISON = "refused by the store"
FAST = RetryPolicy(initial_s=0.01, max_s=0.02)


def refuse_poison(store) -> None:
    """A constraint a user may well add to the table: the store then refuses those rows for good."""
    store.command(f"ALTER TABLE {store.database}.fact_log ADD CONSTRAINT refuse_poison CHECK message != '{POISON}'")


def _facts(n: int, poisoned: tuple[int, ...] = ()) -> pa.Table:
    now = time.time()
    table = TrafficGenerator(seed=3, id_prefix="c-").generate(n, now - 5, now)
    facts = normalize_ndjson(encode_ndjson(table), Provenance("http")).facts
    messages = facts.column("message").to_pylist()
    for position in poisoned:
        messages[position] = POISON
    return facts.set_column(facts.schema.get_field_index("message"), "message", pa.array(messages, pa.string()))


class Recording:
    """A sink that records what it is asked to write, failing as scripted first."""

    def __init__(self, name: str, failures: list[SinkError] | None = None):
        self.name = name
        self.failures = list(failures or [])
        self.calls: list[tuple[str, int]] = []

    def write(self, batch: pa.Table, token: str) -> None:
        self.calls.append((token, batch.num_rows))
        if self.failures:
            raise self.failures.pop(0)


def test_a_permanent_rejection_is_split_down_to_the_refused_rows_and_the_rest_stored_once(store):
    refuse_poison(store)
    facts = _facts(1000, poisoned=(10, 500, 999))
    sinks = Sinks(fact_sink(store), [dead_letter_sink(store)])
    written = write_batch(facts, DEAD_LETTER_SCHEMA.empty_table(), "batch-1", sinks, FAST)
    assert [r.position for r in written.refused] == [10, 500, 999]
    stored = facts.num_rows - 3  # the generator adds application error logs beside the requests
    assert written.facts_written == stored
    assert all("VIOLATED_CONSTRAINT" in r.reason and "refuse_poison" in r.reason for r in written.refused)
    db = store.database
    assert store.query_rows(f"SELECT count(), uniqExact(event_id) FROM {db}.fact_log")[1] == [(stored, stored)]
    dead = store.query_rows(f"SELECT reason, raw FROM {db}.dead_letter")[1]
    assert len(dead) == 3 and all(reason.startswith("rejected by the store: ") for reason, _ in dead)
    expected = pc.take(facts.column("event_id"), pa.array([10, 500, 999])).to_pylist()
    assert sorted(orjson.loads(raw)["event_id"] for _, raw in dead) == sorted(expected)
    # the same batch again (a replay): every insert carries the token of the first time
    write_batch(facts, DEAD_LETTER_SCHEMA.empty_table(), "batch-1", sinks, FAST)
    assert store.scalar(f"SELECT count() FROM {db}.fact_log") == stored


def test_dead_letters_go_first_and_retryable_failures_are_retried_with_the_same_token():
    facts, dead = Recording("facts", [SinkError("timeout", True), SinkError("timeout", True)]), Recording("dead")
    order: list[str] = []
    for sink in (facts, dead):
        original = sink.write
        sink.write = lambda batch, token, original=original, sink=sink: (order.append(sink.name),
                                                                          original(batch, token))
    dead_rows = pa.table({"reason": ["r"], "raw": ["x"]})
    write_batch(_facts(5), dead_rows, "t-7", Sinks(facts, [dead]), FAST)
    assert order == ["dead", "facts", "facts", "facts"]
    assert facts.calls == [("t-7", 5)] * 3  # the same token each time, so a write that did land counts once
    assert dead.calls == [("t-7:dead", 1)]


def test_a_write_that_keeps_failing_past_its_deadline_raises_and_acknowledges_nothing():
    failing = Recording("facts", [SinkError("down", True)] * 1000)
    with pytest.raises(SinkError, match="down"):
        write_batch(_facts(3), DEAD_LETTER_SCHEMA.empty_table(), "t", Sinks(failing, []), FAST,
                    give_up_at=time.monotonic() + 0.2)
    with pytest.raises(SinkError):
        write_batch(_facts(3), DEAD_LETTER_SCHEMA.empty_table(), "t", Sinks(Recording("f", [SinkError("x", True)]), []),
                    FAST, should_stop=lambda: True)


def test_a_permanently_failing_dead_letter_sink_is_an_error_not_a_loss():
    dead = Recording("dead", [SinkError("no table", False)])
    with pytest.raises(SinkError, match="no table"):
        write_batch(_facts(2), pa.table({"reason": ["r"], "raw": ["x"]}), "t", Sinks(Recording("facts"), [dead]), FAST)
