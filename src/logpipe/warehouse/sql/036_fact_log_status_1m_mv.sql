CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_status_1m_mv TO {{database}}.fact_log_status_1m AS
SELECT toStartOfMinute(ts) AS minute, service, source, status, count() AS requests
FROM {{database}}.fact_log
WHERE kind = 'request'
GROUP BY minute, service, source, status
