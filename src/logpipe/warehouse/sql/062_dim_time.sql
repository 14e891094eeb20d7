-- A calendar by hour, covering the retention window and the days ahead; the engines' dimension sync
-- adds the hours it lacks. ReplacingMergeTree: an hour written twice (two engines syncing at once)
-- is one row after a merge or with FINAL.
CREATE TABLE IF NOT EXISTS {{database}}.dim_time
(
    hour         DateTime('UTC'),
    date         Date,
    hour_of_day  UInt8,
    day_of_week  UInt8,
    day_name     LowCardinality(String),
    is_weekend   Bool,
    iso_week     UInt8,
    iso_year     UInt16,
    month        UInt8,
    quarter      UInt8,
    year         UInt16
)
ENGINE = ReplacingMergeTree
ORDER BY hour
TTL hour + INTERVAL {{retention_days}} DAY + INTERVAL 1 DAY
