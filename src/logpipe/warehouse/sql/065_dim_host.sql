CREATE VIEW IF NOT EXISTS {{database}}.dim_host AS
SELECT host, argMaxMerge(region) AS region, min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM {{database}}.dim_host_seen
GROUP BY host
