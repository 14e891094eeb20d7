-- Each host with its region (the one of its latest event) and its first and last event time. Fed as
-- dim_service_seen is, for the same reasons; read through the view dim_host.
CREATE TABLE IF NOT EXISTS {{database}}.dim_host_seen
(
    host        LowCardinality(String),
    region      AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY host
SETTINGS non_replicated_deduplication_window = 10000
