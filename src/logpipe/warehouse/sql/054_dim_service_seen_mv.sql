CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.dim_service_seen_mv TO {{database}}.dim_service_seen AS
SELECT service, min(ts) AS first_seen, max(ts) AS last_seen, count() AS events
FROM {{database}}.fact_log
GROUP BY service
