-- What the stream says of each service: first and last event time and the events stored. Fed by a
-- materialized view in the same insert as the facts, so a batch's sightings are stored exactly when
-- its facts are: a retried or replayed batch carries the same insert token and is dropped here too
-- (the deduplication window), and a kill -9 cannot lose what was inserted. AggregatingMergeTree with
-- min and max, not ReplacingMergeTree: rows written by any number of engines, in any order, merge
-- into the same one, and no writer reads before it writes. Read through the view dim_service.
CREATE TABLE IF NOT EXISTS {{database}}.dim_service_seen
(
    service     LowCardinality(String),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events      SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY service
SETTINGS non_replicated_deduplication_window = 10000
