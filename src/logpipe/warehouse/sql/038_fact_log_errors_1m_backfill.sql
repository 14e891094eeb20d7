-- A store whose facts predate this rollup: it is filled in from them once, before the view below
-- feeds it (a store with no errors yet, or with the rollup already, writes nothing).
INSERT INTO {{database}}.fact_log_errors_1m
SELECT toStartOfMinute(ts), service, source, error_code, substring(message, 1, 120), count() FROM {{database}}.fact_log
WHERE level IN ('ERROR', 'FATAL') AND (SELECT count() FROM {{database}}.fact_log_errors_1m) = 0
GROUP BY 1, 2, 3, 4, 5
