CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_errors_1m_mv TO {{database}}.fact_log_errors_1m AS
SELECT toStartOfMinute(ts) AS minute, service, source, error_code, substring(message, 1, 120) AS message,
    count() AS events
FROM {{database}}.fact_log
WHERE level IN ('ERROR', 'FATAL')
GROUP BY minute, service, source, error_code, message
