-- Every alert transition of the watchdog: one row when a rule starts firing for a subject, one when it resolves.
CREATE TABLE IF NOT EXISTS {{database}}.alerts
(
    ts          DateTime64(3, 'UTC'),
    rule        LowCardinality(String),
    subject     String,
    state       LowCardinality(String),
    severity    LowCardinality(String),
    value       Float64,
    threshold   Float64,
    since       DateTime64(3, 'UTC'),
    message     String
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (rule, subject, ts)
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1
