-- Request latency per minute, service and source: the latency panel's t-digests, one per service
-- and minute rather than one per endpoint, so a day of it merges a fifth of the states. Fed from
-- fact_log_1m's inserts (a view over the rollup's own rows, merging their states), not from the
-- raw rows: no t-digest is built twice per request.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_latency_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    source      LowCardinality(String),
    latency_q   AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), Float32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, service, source)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
