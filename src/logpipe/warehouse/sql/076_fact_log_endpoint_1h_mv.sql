CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_endpoint_1h_mv TO {{database}}.fact_log_endpoint_1h AS
SELECT toStartOfHour(minute) AS hour, service, endpoint, source, sum(requests) AS requests,
    quantilesTDigestIfMergeState(0.5, 0.95, 0.99)(latency_q) AS latency_q
FROM {{database}}.fact_log_1m
WHERE endpoint != ''
GROUP BY hour, service, endpoint, source
