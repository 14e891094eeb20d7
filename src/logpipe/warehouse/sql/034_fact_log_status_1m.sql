-- Requests per minute, service, source and status code, for the status-code panel: a day of it is
-- a few hundred thousand rows at most, whatever the traffic, where the raw requests are billions.
-- Kept apart from fact_log_1m, whose key would grow by the status codes for every other panel.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_status_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    source      LowCardinality(String),
    status      UInt16,
    requests    SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, service, source, status)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
