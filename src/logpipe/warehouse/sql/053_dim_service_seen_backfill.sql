-- A store whose facts predate the dimensions: its services are filled in from them once, before the
-- view below feeds the table (a store with no facts yet, or with dimensions already, writes nothing).
INSERT INTO {{database}}.dim_service_seen
SELECT service, min(ts), max(ts), count() FROM {{database}}.fact_log
WHERE (SELECT count() FROM {{database}}.dim_service_seen) = 0
GROUP BY service
