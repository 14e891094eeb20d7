CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.dim_endpoint_seen_mv TO {{database}}.dim_endpoint_seen AS
SELECT service, method, endpoint, min(ts) AS first_seen, max(ts) AS last_seen
FROM {{database}}.fact_log
WHERE endpoint != ''
GROUP BY service, method, endpoint
