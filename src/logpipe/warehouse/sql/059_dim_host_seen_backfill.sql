INSERT INTO {{database}}.dim_host_seen
SELECT host, argMaxState(toString(region), ts), min(ts), max(ts) FROM {{database}}.fact_log
WHERE host != '' AND (SELECT count() FROM {{database}}.dim_host_seen) = 0
GROUP BY host
