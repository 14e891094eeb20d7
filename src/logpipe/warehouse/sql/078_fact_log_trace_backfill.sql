-- A store whose facts predate the trace table: it is filled in from them once, before the view below
-- feeds it (a store with no traced events yet, or with the table filled, writes nothing).
INSERT INTO {{database}}.fact_log_trace
SELECT cityHash64(trace_id), service, toDateTime(ts) FROM {{database}}.fact_log
WHERE trace_id != '' AND (SELECT count() FROM {{database}}.fact_log_trace) = 0
