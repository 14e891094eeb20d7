INSERT INTO {{database}}.dim_endpoint_seen
SELECT service, method, endpoint, min(ts), max(ts) FROM {{database}}.fact_log
WHERE endpoint != '' AND (SELECT count() FROM {{database}}.dim_endpoint_seen) = 0
GROUP BY service, method, endpoint
