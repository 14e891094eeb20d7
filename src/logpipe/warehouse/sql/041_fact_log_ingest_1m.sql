-- Rows per minute of insert time (ingest_ts), service and source, with the t-digest of how long
-- each took from its event time: the pipeline panel's inserted rate and freshness, at the cost of
-- a few thousand rows a day rather than every raw row's two timestamps.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_ingest_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    source      LowCardinality(String),
    events      SimpleAggregateFunction(sum, UInt64),
    delay_q     AggregateFunction(quantileTDigest(0.99), Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, service, source)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
