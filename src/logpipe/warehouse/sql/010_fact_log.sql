-- One row per service log event. Columns mirror logpipe.events.FACT_FIELDS (a test proves it).
-- ORDER BY (service, ts): every dashboard panel filters on a time range and most on a service.
-- merge_selector_base = 64 (default 5): fewer, wider background merges, so merges rewrite each row
-- fewer times while inserts come in fast (the measurements: bench/results/history). The selector
-- lowers its base as parts pile up, so a steady stream of inserts stays at tens of parts.
-- min_bytes_for_wide_part = 128 MiB (default 10 MiB): a batch of 100,000 rows (16 MiB) is written as
-- one compact part of a few files, not two files per column; parts merged past 128 MiB are wide.
-- Compact parts are larger until merged.
CREATE TABLE IF NOT EXISTS {{database}}.fact_log
(
    event_id    String CODEC(ZSTD(1)),
    ts          DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingest_ts   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    service     LowCardinality(String),
    kind        LowCardinality(String),
    level       LowCardinality(String),
    method      LowCardinality(String),
    endpoint    LowCardinality(String),
    status      UInt16 CODEC(T64, ZSTD(1)),
    latency_ms  Float32 CODEC(ZSTD(1)),
    bytes       UInt64 CODEC(T64, ZSTD(1)),
    user_id     String CODEC(ZSTD(1)),
    trace_id    String CODEC(ZSTD(1)),
    client_ip   String CODEC(ZSTD(1)),
    host        LowCardinality(String),
    region      LowCardinality(String),
    error_code  LowCardinality(String),
    message     String CODEC(ZSTD(3)),
    attributes  Map(String, String) CODEC(ZSTD(1)),
    source      LowCardinality(String),
    sender      LowCardinality(String),
    topic       LowCardinality(String),
    partition   Int32 CODEC(T64, ZSTD(1)),
    offset      Int64 CODEC(Delta, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, ts)
TTL toDateTime(ts) + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000, merge_selector_base = 64,
         min_bytes_for_wide_part = 134217728
