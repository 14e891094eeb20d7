-- Request latency states and counts per hour, service, endpoint and source, for the slowest-endpoints
-- table: a day of it merges 24 states per endpoint instead of 1,440. The panel reads the hours that lie
-- whole inside its range here and the minutes at its edges from fact_log_1m. Fed by a view over
-- fact_log_1m's inserts.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_endpoint_1h
(
    hour        DateTime('UTC'),
    service     LowCardinality(String),
    endpoint    LowCardinality(String),
    source      LowCardinality(String),
    requests    SimpleAggregateFunction(sum, UInt64),
    latency_q   AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), Float32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(hour)
ORDER BY (hour, service, endpoint, source)
TTL hour + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
