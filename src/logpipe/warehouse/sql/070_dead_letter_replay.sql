-- What became of each replayed dead letter (`logpipe dlq replay`, POST /api/dead-letters/replay), by
-- the dead letter's id: cityHash64 of its row (queries.DEAD_LETTER_ID). 'pending' is written before
-- the records are handed to the intake, with the text handed on and its idempotency key, so that a
-- replay cut short by a crash is finished with the same key and text; then 'stored' (the record is in
-- fact_log) or 'failed' (the intake dead-lettered it again, with `reason`: that new dead letter is the
-- one to fix). A dead letter with an outcome is never selected for replay again. Rows are few (one or
-- two per replayed dead letter) and read by id; ReplacingMergeTree keeps the newest of an id, and the
-- queries read the newest themselves (argMax), so nothing depends on when parts merge.
CREATE TABLE IF NOT EXISTS {{database}}.dead_letter_replay
(
    id          UInt64,
    ts          DateTime64(3, 'UTC'),
    state       LowCardinality(String),
    key         String,
    source      LowCardinality(String),
    raw         String CODEC(ZSTD(3)),
    copies      UInt32,
    reason      String
)
ENGINE = ReplacingMergeTree(ts)
ORDER BY id
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
