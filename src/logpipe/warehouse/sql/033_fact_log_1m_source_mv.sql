CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_1m_source_mv TO {{database}}.fact_log_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    service,
    endpoint,
    source,
    count() AS events,
    countIf(kind = 'request') AS requests,
    countIf(status >= 400 AND status < 500) AS errors_4xx,
    countIf(status >= 500) AS errors_5xx,
    countIf(level IN ('ERROR', 'FATAL')) AS error_logs,
    sum(bytes) AS bytes,
    sumIf(toFloat64(latency_ms), kind = 'request') AS latency_sum,
    maxIf(latency_ms, kind = 'request') AS latency_max,
    quantilesTDigestIfState(0.5, 0.95, 0.99)(latency_ms, toUInt8(kind = 'request')) AS latency_q
FROM {{database}}.fact_log
GROUP BY minute, service, endpoint, source
