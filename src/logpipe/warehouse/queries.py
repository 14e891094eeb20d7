"""The SQL text logpipe runs, in one place: the DDL is in ``sql/``, the dashboard's panel queries are
defined with their panels (``dashboard/panels.py``), and every other statement is here.

``{db}`` stands for the database (``in_database``); values are ``{name:Type}`` placeholders that
ClickHouse binds, never formatted into the text.
"""

from __future__ import annotations


def in_database(sql: str, database: str) -> str:
    """The statement for ``database`` (str.format would take the placeholders' braces for its own)."""
    return sql.replace("{db}", database)


# The store's own statements.
PING = "SELECT 1"
PARSE = "SELECT parseQueryToJSON({sql:String})"
INSERT_ARROW_FILE = "INSERT INTO {table} ({columns}) FROM INFILE {path}{settings} FORMAT Arrow"  # str.format

# The Kafka processor: where a partition resumes after a crash (past the highest offset inserted).
MAX_INSERTED_OFFSET = ("SELECT maxOrNull(offset) FROM {db}.fact_log "
                       "WHERE source = 'kafka' AND topic = {topic:String} AND partition = {partition:Int32}")

# The dashboard's service menu, and the Grafana dashboard's service variable.
SERVICES = "SELECT service FROM {db}.dim_service WHERE last_seen > now() - INTERVAL 1 DAY ORDER BY service"
SERVICES_ALL_TIME = "SELECT service FROM {db}.dim_service ORDER BY service"
SOURCES = ("SELECT DISTINCT source FROM {db}.fact_log_1m WHERE minute > now() - INTERVAL 1 DAY AND source != '' "
           "ORDER BY source")
SOURCES_ALL_TIME = "SELECT DISTINCT source FROM {db}.fact_log_1m WHERE source != '' ORDER BY source"

# The dimension sync (warehouse/dimensions.py); the dimension tables and dictionaries are in sql/.
DICTIONARIES = ("dict_service", "dict_status", "dict_host")
RELOAD_DICTIONARY = "SYSTEM RELOAD DICTIONARY {db}.{name}"  # name: one of DICTIONARIES (str.format)
CATALOG_ENTRIES = "SELECT service, tier, team, owner, version FROM {db}.dim_service_catalog FINAL"
# The hours from {start} (epoch seconds) on, {hours} of them, that the calendar lacks.
EXTEND_CALENDAR = (
    "INSERT INTO {db}.dim_time SELECT hour, toDate(hour), toHour(hour), toDayOfWeek(hour), dateName('weekday', hour), "
    "toDayOfWeek(hour) >= 6, toISOWeek(hour), toISOYear(hour), toMonth(hour), toQuarter(hour), toYear(hour) "
    "FROM (SELECT toDateTime({start:UInt32}, 'UTC') + toIntervalHour(number) AS hour FROM numbers({hours:UInt32})) "
    "WHERE hour NOT IN (SELECT hour FROM {db}.dim_time WHERE hour >= toDateTime({start:UInt32}, 'UTC'))")
CALENDAR_HOURS = "SELECT count() FROM {db}.dim_time WHERE hour >= toDateTime({start:UInt32}, 'UTC')"

# The alerts firing now (`logpipe alerts`).
ACTIVE_ALERTS = (
    "SELECT rule, subject, argMax(severity, ts) AS severity, argMax(value, ts) AS value, "
    "argMax(threshold, ts) AS threshold, argMax(since, ts) AS since, argMax(message, ts) AS message "
    "FROM {db}.alerts GROUP BY rule, subject HAVING argMax(state, ts) = 'firing' ORDER BY since"
)

# The watchdog's checks. Each window ends now: an event stamped in the future (which ingest refuses past
# LOGPIPE_MAX_FUTURE_S) is never read as fresh or counted in a window.
ERROR_RATE = ("SELECT service, 100 * countIf(status >= 500) / count() FROM {db}.fact_log "
              "WHERE kind = 'request' AND ts > now64(3) - INTERVAL {w:UInt32} SECOND AND ts <= now64(3) "
              "GROUP BY service HAVING count() >= {m:UInt32}")
LATENCY_P99 = ("SELECT service, quantile(0.99)(latency_ms) FROM {db}.fact_log "
               "WHERE kind = 'request' AND ts > now64(3) - INTERVAL {w:UInt32} SECOND AND ts <= now64(3) "
               "GROUP BY service HAVING count() >= {m:UInt32}")
FRESHNESS = ("SELECT dateDiff('millisecond', max(ts), now64(3)) / 1000, count() FROM {db}.fact_log "
             "WHERE ts > now64(3) - INTERVAL 1 DAY AND ts <= now64(3)")
DEAD_LETTERS_PER_S = ("SELECT count() / {w:UInt32} FROM {db}.dead_letter "
                      "WHERE ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND AND ingest_ts <= now64(3)")
INGEST_AGAINST_BASELINE = (
    "SELECT countIf(ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND) / {w:UInt32}, "
    "countIf(ingest_ts <= now64(3) - INTERVAL {w:UInt32} SECOND) FROM {db}.fact_log "
    "WHERE ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND - INTERVAL {b:UInt32} SECOND "
    "AND ingest_ts <= now64(3)")

# logpipe bench: marker events posted and looked for, and the engine's merges.
EVENT_COUNT_BY_ID = "SELECT count() FROM {db}.fact_log WHERE event_id = {id:String}"
MARKERS_SEEN = "SELECT event_id FROM {db}.fact_log WHERE service = 'bench' AND event_id IN {ids:Array(String)}"
MERGES_RUNNING = "SELECT count() FROM system.merges"
