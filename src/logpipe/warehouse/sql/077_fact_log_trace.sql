-- Where each trace is: per traced event, the hash of its trace id, its service and its second, sorted by
-- the hash, so a lookup reads one granule of it per part and then only the (service, ts) range of
-- fact_log that its sorting key points at. The OpenTelemetry Collector's ClickHouse exporter keeps a
-- table of the same purpose for its traces (otel_traces_trace_id_ts). A bloom filter on fact_log's
-- trace_id instead read its filter of every granule of the range, 59 MiB for a day of 50 million rows,
-- and answered slower; the hash and the second, rather than the id and the millisecond, make this table
-- a fraction of the insert's cost and of the disk (bench/results/history/2026-12-02-trace-lookup.md).
-- A hash that two ids share only widens the range read: the lookup still matches fact_log's trace_id.
-- Plain MergeTree: a repeated block adds rows that say the same (the lookup takes min and max).
CREATE TABLE IF NOT EXISTS {{database}}.fact_log_trace
(
    trace_hash  UInt64 CODEC(Delta, ZSTD(1)),
    service     LowCardinality(String),
    second      DateTime('UTC') CODEC(ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(second)
ORDER BY trace_hash
TTL second + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
