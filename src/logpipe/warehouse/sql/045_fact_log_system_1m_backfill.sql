-- A store whose facts predate this rollup: it is filled in from them once, before the view below
-- feeds it (a store with no system logs yet, or with the rollup already, writes nothing).
INSERT INTO {{database}}.fact_log_system_1m
SELECT toStartOfMinute(ts), service, source, host, level, count() FROM {{database}}.fact_log
WHERE kind = 'system' AND (SELECT count() FROM {{database}}.fact_log_system_1m) = 0
GROUP BY 1, 2, 3, 4, 5
