-- Each endpoint of each service by method, with its first and last request time. Fed as
-- dim_service_seen is, for the same reasons; read through the view dim_endpoint.
CREATE TABLE IF NOT EXISTS {{database}}.dim_endpoint_seen
(
    service     LowCardinality(String),
    method      LowCardinality(String),
    endpoint    LowCardinality(String),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (service, endpoint, method)
SETTINGS non_replicated_deduplication_window = 10000
