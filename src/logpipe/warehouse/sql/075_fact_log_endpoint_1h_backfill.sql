-- A store whose rollup predates this one: it is filled in from it once, before the view below feeds
-- it (a store with no requests yet, or with this rollup already, writes nothing).
INSERT INTO {{database}}.fact_log_endpoint_1h
SELECT toStartOfHour(minute), service, endpoint, source, sum(requests),
    quantilesTDigestIfMergeState(0.5, 0.95, 0.99)(latency_q)
FROM {{database}}.fact_log_1m
WHERE endpoint != '' AND (SELECT count() FROM {{database}}.fact_log_endpoint_1h) = 0
GROUP BY 1, 2, 3, 4
