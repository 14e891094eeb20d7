-- Records that could not become fact rows, with the raw payload and the reason.
CREATE TABLE IF NOT EXISTS {{database}}.dead_letter
(
    ingest_ts   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    source      LowCardinality(String),
    topic       LowCardinality(String),
    partition   Int32,
    offset      Int64,
    reason      String CODEC(ZSTD(1)),
    raw         String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toDate(ingest_ts)
ORDER BY ingest_ts
TTL toDateTime(ingest_ts) + INTERVAL {{retention_days}} DAY
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000
