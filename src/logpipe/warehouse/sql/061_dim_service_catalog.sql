-- The service catalog the user keeps (LOGPIPE_SERVICE_CATALOG, a YAML file): tier, team and owner.
-- Written by the engines' dimension sync, only the services whose entry changed, each change a row
-- with a higher version (a service dropped from the file gets empty fields). ReplacingMergeTree by
-- version: the newest entry of a service wins, however often it is synced.
CREATE TABLE IF NOT EXISTS {{database}}.dim_service_catalog
(
    service     LowCardinality(String),
    tier        LowCardinality(String),
    team        LowCardinality(String),
    owner       String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY service
