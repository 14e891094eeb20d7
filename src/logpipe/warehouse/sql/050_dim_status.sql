-- dim_status: every HTTP status code with its class, reason phrase, and whether it counts as an error
-- (5xx, as the error-rate panels and the watchdog count). Static, shipped with logpipe (051).
-- ReplacingMergeTree: should the codes ever be written twice (two processes applying the schema at
-- once), a merge or FINAL keeps one row per code.
CREATE TABLE IF NOT EXISTS {{database}}.dim_status
(
    status      UInt16,
    class       LowCardinality(String),
    reason      String,
    is_error    Bool
)
ENGINE = ReplacingMergeTree
ORDER BY status
