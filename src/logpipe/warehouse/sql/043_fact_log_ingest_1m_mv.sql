CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.fact_log_ingest_1m_mv TO {{database}}.fact_log_ingest_1m AS
SELECT toStartOfMinute(ingest_ts) AS minute, service, source, count() AS events,
    quantileTDigestState(0.99)(toFloat32(dateDiff('millisecond', ts, ingest_ts))) AS delay_q
FROM {{database}}.fact_log
GROUP BY minute, service, source
