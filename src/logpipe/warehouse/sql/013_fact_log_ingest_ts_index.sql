-- What came in lately, by ingest time: the watchdog's ingest-rate check and the logs page's live tail
-- read fact_log by ingest_ts, which is not in its sorting key. A part holds one insert's rows, or
-- rows merged from parts of neighbouring inserts, so its granules' ingest times span little; a minmax
-- index on it skips every part and granule that came in before the window, instead of reading the
-- column of the whole table on each tick.
ALTER TABLE {{database}}.fact_log ADD INDEX IF NOT EXISTS ingest_ts_minmax ingest_ts TYPE minmax GRANULARITY 1
