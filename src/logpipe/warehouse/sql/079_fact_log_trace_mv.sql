CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_trace_mv TO {{database}}.fact_log_trace AS
SELECT cityHash64(trace_id) AS trace_hash, service, toDateTime(ts) AS second
FROM {{database}}.fact_log
WHERE trace_id != ''
