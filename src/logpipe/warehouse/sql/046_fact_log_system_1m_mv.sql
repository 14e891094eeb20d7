CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_system_1m_mv TO {{database}}.fact_log_system_1m AS
SELECT toStartOfMinute(ts) AS minute, service, source, host, level, count() AS events
FROM {{database}}.fact_log
WHERE kind = 'system'
GROUP BY minute, service, source, host, level
