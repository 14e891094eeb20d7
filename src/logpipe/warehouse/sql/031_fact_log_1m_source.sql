-- Rollups created before the source column take it here, in the sorting key too: ClickHouse adds a
-- column to the key only in the ALTER that adds the column. Rows rolled up before it have source ''.
ALTER TABLE {{database}}.fact_log_1m ADD COLUMN IF NOT EXISTS source LowCardinality(String) AFTER endpoint,
    MODIFY ORDER BY (service, endpoint, minute, source)
