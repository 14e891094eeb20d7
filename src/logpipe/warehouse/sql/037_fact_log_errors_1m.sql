-- Logs at ERROR or FATAL per minute, service, source, error code and message (its first 120
-- characters, as the panel shows it), for the top-error-messages panel. Its size follows the
-- distinct messages, not the traffic: messages that embed an id give a row each, as in the facts.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_errors_1m
(
    minute      DateTime('UTC'),
    service     LowCardinality(String),
    source      LowCardinality(String),
    error_code  LowCardinality(String),
    message     String CODEC(ZSTD(3)),
    events      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, service, source, error_code, message)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
