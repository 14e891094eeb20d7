CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.dim_host_seen_mv TO {{database}}.dim_host_seen AS
SELECT host, argMaxState(toString(region), ts) AS region, min(ts) AS first_seen, max(ts) AS last_seen
FROM {{database}}.fact_log
WHERE host != ''
GROUP BY host
