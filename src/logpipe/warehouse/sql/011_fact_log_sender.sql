-- Tables created before the sender column (the name of the ingest token that sent each event) take it here.
ALTER TABLE {{database}}.fact_log ADD COLUMN IF NOT EXISTS sender LowCardinality(String) AFTER source
