-- System logs (kind system) per minute, service, source, host and level, for the panel of system
-- logs by host and severity: its size follows the hosts, not the messages.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_system_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    source      LowCardinality(String),
    host        LowCardinality(String),
    level       LowCardinality(String),
    events      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, service, source, host, level)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
