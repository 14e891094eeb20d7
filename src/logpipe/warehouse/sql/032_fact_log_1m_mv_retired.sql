-- The view that rolled up without the source; its successor is fact_log_1m_source_mv.
DROP VIEW IF EXISTS {{database}}.fact_log_1m_mv
