-- Per-minute rollup per service, endpoint and source, so panels over a day read thousands of rows, not millions.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    endpoint    LowCardinality(String),
    source      LowCardinality(String),
    events      SimpleAggregateFunction(sum, UInt64),
    requests    SimpleAggregateFunction(sum, UInt64),
    errors_4xx  SimpleAggregateFunction(sum, UInt64),
    errors_5xx  SimpleAggregateFunction(sum, UInt64),
    error_logs  SimpleAggregateFunction(sum, UInt64),
    bytes       SimpleAggregateFunction(sum, UInt64),
    latency_sum SimpleAggregateFunction(sum, Float64),
    latency_max SimpleAggregateFunction(max, Float32),
    latency_q   AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), Float32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (service, endpoint, minute, source)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
