-- The logs page's lookups and free text (dashboard/search.py), without a scan of the time range:
-- bloom filters on the user and event ids, and a token bloom filter on the lower-cased message, which
-- the search reads through hasToken(lowerUTF8(message), ...). Each holds one filter per granule (8,192
-- rows), so a lookup reads only the granules that may hold its value. Trace ids have a table of their
-- own (sql/077). tokenbf_v1 rather than ClickHouse's text index: the same DDL runs on every server
-- logpipe supports (the text index is experimental in 25.8, the compose image) and measured the same
-- insert cost (bench/results/history/2026-12-01-search.md). A table created before these indexes takes
-- them here; parts written before keep being read whole until the index is materialized (docs/search.md:
-- the ALTER path of an existing table).
ALTER TABLE {{database}}.fact_log ADD INDEX IF NOT EXISTS user_id_bloom user_id TYPE bloom_filter(0.01) GRANULARITY 1,
    ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 1,
    ADD INDEX IF NOT EXISTS message_tokens lowerUTF8(message) TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 1
