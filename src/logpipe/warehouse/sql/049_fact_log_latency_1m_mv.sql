CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_latency_1m_mv TO {{database}}.fact_log_latency_1m AS
SELECT minute, service, source, quantilesTDigestIfMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q
FROM {{database}}.fact_log_1m
WHERE requests > 0
GROUP BY minute, service, source
