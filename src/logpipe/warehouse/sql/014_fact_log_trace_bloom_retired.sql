-- The trace_id bloom filter that earlier stores carry: fact_log_trace (sql/077) answers trace lookups
-- now, and the filter would only cost every insert its hashing.
ALTER TABLE {{database}}.fact_log DROP INDEX IF EXISTS trace_id_bloom
