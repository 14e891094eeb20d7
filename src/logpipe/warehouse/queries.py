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
# Freshness reads the raw rows of the newest minute the rollup has, not a day of them: its cost stays
# that of a minute of events however much the store holds (a day only when nothing came for a day).
FRESHNESS = ("SELECT dateDiff('millisecond', max(ts), now64(3)) / 1000, count() FROM {db}.fact_log "
             "WHERE ts >= greatest(now() - INTERVAL 1 DAY, (SELECT max(minute) FROM {db}.fact_log_1m "
             "WHERE minute > now() - INTERVAL 1 DAY AND minute <= now())) AND ts <= now64(3)")
DEAD_LETTERS_PER_S = ("SELECT count() / {w:UInt32} FROM {db}.dead_letter "
                      "WHERE ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND AND ingest_ts <= now64(3)")
INGEST_AGAINST_BASELINE = (
    "SELECT countIf(ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND) / {w:UInt32}, "
    "countIf(ingest_ts <= now64(3) - INTERVAL {w:UInt32} SECOND) FROM {db}.fact_log "
    "WHERE ingest_ts > now64(3) - INTERVAL {w:UInt32} SECOND - INTERVAL {b:UInt32} SECOND "
    "AND ingest_ts <= now64(3)")

# logpipe bench: marker events posted and looked for, and the engine's merges.
FACT_ROWS = "SELECT count() FROM {db}.fact_log"
MARKERS_SEEN = "SELECT event_id FROM {db}.fact_log WHERE service = 'bench' AND event_id IN {ids:Array(String)}"
SYSLOG_MARKERS_SEEN = ("SELECT message FROM {db}.fact_log WHERE service = 'bench' AND kind = 'system' "
                       "AND message IN {ids:Array(String)}")
MERGES_RUNNING = "SELECT count() FROM system.merges"
ACTIVE_PARTS = "SELECT count() FROM system.parts WHERE database = {db:String} AND active"  # the soak scenarios

# Dead letters and their replay (processing/dead_letters.py; table dead_letter_replay in sql/). A dead
# letter's id is a hash of its whole row: rows alike in every column are one dead letter with `copies`.
DEAD_LETTER_ID = "cityHash64(ingest_ts, source, topic, partition, offset, reason, raw)"
_REPLAY_NEWEST = "(ts, state != 'pending')"  # a pending row and its outcome may share a millisecond
_REPLAY_OUTCOMES = (f"SELECT id, argMax(state, {_REPLAY_NEWEST}) AS outcome, "
                    f"argMax(reason, {_REPLAY_NEWEST}) AS outcome_reason, max(ts) AS outcome_ts "
                    "FROM {db}.dead_letter_replay GROUP BY id")
# A reason without the value its record had ("status: not a number (got 'abc')" -> "status: not a
# number"): what the reasons are listed, chosen and replayed by.
REASON_KIND = "replaceRegexpOne(reason, ' [(]got .*$', '')"
_LETTERS = (f"SELECT {DEAD_LETTER_ID} AS id, ingest_ts, source, topic, partition, offset, reason, raw, "
            f"{REASON_KIND} AS kind, count() AS copies FROM {{db}}.dead_letter "
            "WHERE ingest_ts >= {from:DateTime64(3)} AND ingest_ts < {to:DateTime64(3)} "
            f"AND ({{reason:String}} = '' OR {REASON_KIND} = {{reason:String}}) "
            "GROUP BY ingest_ts, source, topic, partition, offset, reason, raw")
_LETTERS_WITH_OUTCOMES = f"({_LETTERS}) AS l LEFT JOIN ({_REPLAY_OUTCOMES}) AS r ON l.id = r.id"
# The reasons (their kinds) of the window with how many dead letters each has and how many are still open.
DEAD_LETTER_REASONS = (f"SELECT l.kind, sum(l.copies) AS letters, sumIf(l.copies, r.outcome = '') AS open, "
                       f"max(l.ingest_ts) AS last FROM {_LETTERS_WITH_OUTCOMES} GROUP BY l.kind "
                       "ORDER BY open DESC, letters DESC, l.kind LIMIT {limit:UInt32}")
# Newest first, `limit` of them older than a cursor (the last shown: its ingest_ts and id); `state` is
# 'all' or one outcome ('' for open).
DEAD_LETTER_PAGE = (f"SELECT toString(l.id), l.ingest_ts, l.source, l.topic, l.partition, l.offset, l.reason, "
                    f"l.raw, l.copies, r.outcome, r.outcome_reason, r.outcome_ts FROM {_LETTERS_WITH_OUTCOMES} "
                    "WHERE ({state:String} = 'all' OR r.outcome = {state:String}) "
                    "AND ({before_ts:Int64} = 0 OR (toUnixTimestamp64Milli(l.ingest_ts), l.id) < "
                    "({before_ts:Int64}, {before_id:UInt64})) "
                    "ORDER BY l.ingest_ts DESC, l.id DESC LIMIT {limit:UInt32}")
# The open dead letters a replay takes: those of `ids`, or (with no ids) all of the window's `reason` (a kind).
DEAD_LETTERS_TO_REPLAY = (f"SELECT l.id, l.source, l.raw, l.copies FROM {_LETTERS_WITH_OUTCOMES} "
                          "WHERE r.outcome = '' AND (empty({ids:Array(UInt64)}) OR has({ids:Array(UInt64)}, l.id)) "
                          "ORDER BY l.ingest_ts, l.id LIMIT {limit:UInt32}")
# Replays a crash cut short: their last row is 'pending'.
PENDING_REPLAYS = (f"SELECT id, argMax(key, {_REPLAY_NEWEST}), argMax(source, {_REPLAY_NEWEST}), "
                   f"argMax(raw, {_REPLAY_NEWEST}), argMax(copies, {_REPLAY_NEWEST}) "
                   "FROM {db}.dead_letter_replay GROUP BY id "
                   f"HAVING argMax(state, {_REPLAY_NEWEST}) = 'pending' ORDER BY id")

# The search benchmark (bench/search.py): its store's copies of simulated events, with new ids and
# times spread over the day, each ingested half a second after its event time; a sample of trace ids;
# a table's size (fact_log's, the trace table's); and the indexes and view it measures the insert ceiling without.
SEARCH_BENCH_COPY = (
    "INSERT INTO {db}.fact_log SELECT concat(event_id, '.', toString({k:UInt32})), "
    "fromUnixTimestamp64Milli(toInt64({now:Int64} - cityHash64(event_id, {k:UInt32}) % {day:UInt64}), 'UTC'), "
    "fromUnixTimestamp64Milli(toInt64({now:Int64} - cityHash64(event_id, {k:UInt32}) % {day:UInt64}) + 500, 'UTC'), "
    "service, kind, level, method, endpoint, status, latency_ms, bytes, user_id, "
    "if(trace_id = '', '', lower(hex(cityHash64(trace_id, {k:UInt32})))), client_ip, host, region, error_code, "
    "message, attributes, source, sender, topic, partition, offset FROM {db}.fact_log WHERE event_id NOT LIKE '%.%'")
SEARCH_BENCH_TRACES = "SELECT trace_id FROM {db}.fact_log WHERE trace_id != '' ORDER BY rand() LIMIT {n:UInt32}"
SEARCH_BENCH_STORE = ("SELECT sum(rows), count(), sum(bytes_on_disk), sum(secondary_indices_compressed_bytes) "
                      "FROM system.parts WHERE database = {db:String} AND table = {table:String} AND active")
SEARCH_INDEXES = ("user_id_bloom", "event_id_bloom", "message_tokens")  # as in sql/012
SEARCH_VIEWS = ("fact_log_trace_mv",)  # sql/079: what feeds the trace lookup's table
DROP_SEARCH_INDEX = "ALTER TABLE {db}.fact_log DROP INDEX {name}"  # name: one of SEARCH_INDEXES (str.format)
DROP_SEARCH_VIEW = "DROP VIEW {db}.{name}"  # name: one of SEARCH_VIEWS (str.format)
