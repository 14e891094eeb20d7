CREATE VIEW IF NOT EXISTS {{database}}.dim_endpoint AS
SELECT service, method, endpoint, min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM {{database}}.dim_endpoint_seen
GROUP BY service, method, endpoint
