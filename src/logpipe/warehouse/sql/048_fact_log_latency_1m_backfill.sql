-- A store whose rollup predates this one: it is filled in from it once, before the view below feeds
-- it (a store with no requests yet, or with this rollup already, writes nothing).
INSERT INTO {{database}}.fact_log_latency_1m
SELECT minute, service, source, quantilesTDigestIfMergeState(0.5, 0.95, 0.99)(latency_q) FROM {{database}}.fact_log_1m
WHERE requests > 0 AND (SELECT count() FROM {{database}}.fact_log_latency_1m) = 0
GROUP BY 1, 2, 3
