-- One row per service: what the stream says of it, and its catalog entry (empty when it has none).
CREATE VIEW IF NOT EXISTS {{database}}.dim_service AS
SELECT service, first_seen, last_seen, events, catalog.tier AS tier, catalog.team AS team, catalog.owner AS owner
FROM (SELECT service, min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(events) AS events
      FROM {{database}}.dim_service_seen GROUP BY service) AS seen
LEFT JOIN (SELECT service, tier, team, owner FROM {{database}}.dim_service_catalog FINAL) AS catalog USING service
