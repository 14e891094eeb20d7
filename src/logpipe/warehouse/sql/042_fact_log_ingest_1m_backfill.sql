-- A store whose facts predate this rollup: it is filled in from them once, before the view below
-- feeds it (a store with no facts yet, or with the rollup already, writes nothing).
INSERT INTO {{database}}.fact_log_ingest_1m
SELECT toStartOfMinute(ingest_ts), service, source, count(),
    quantileTDigestState(0.99)(toFloat32(dateDiff('millisecond', ts, ingest_ts)))
FROM {{database}}.fact_log
WHERE (SELECT count() FROM {{database}}.fact_log_ingest_1m) = 0
GROUP BY 1, 2, 3
