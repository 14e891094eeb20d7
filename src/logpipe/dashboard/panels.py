"""The dashboard's panels, defined once: a title, a ClickHouse query with named parameters, a chart.

The built-in dashboard runs these queries with bound parameters (``{from:DateTime64(3)}``,
``{to:DateTime64(3)}``, ``{bucket:UInt32}`` seconds, ``{service:String}`` and ``{source:String}``,
each empty for all); the
Grafana export rewrites the same text into Grafana's macros (``grafana_sql``). Queries read the
per-minute rollups (``fact_log_1m`` and the others in warehouse/sql), never raw rows, so a panel's
cost follows its range and the keys in it, not the traffic.

Result shapes, by chart: ``timeseries`` returns (t, series, value) rows; ``bar`` (label, series, value);
``table`` any columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TIME_FILTER = re.compile(r"(\w+) >= \{from:DateTime64\(3\)\} AND \1 < \{to:DateTime64\(3\)\}")
BUCKET = re.compile(r"toStartOfInterval\((\w+), INTERVAL \{bucket:UInt32\} SECOND\)")
SERVICE_FILTER = "({service:String} = '' OR service = {service:String})"
SOURCE_FILTER = "({source:String} = '' OR source = {source:String})"
FILTERS = ("service", "source")  # the dashboard's variables, each a String parameter, empty for all
GRAFANA_ALL = "__all"


def _any_filter(variable: str) -> re.Pattern[str]:
    return re.compile(rf"\(\{{{variable}:String\}} = '' OR (\w+) = \{{{variable}:String\}}\)")


def grafana_variable(variable: str) -> str:
    """A variable inside a ClickHouse string literal: percent-encoded by Grafana, so the literal holds
    nothing but letters, digits, "-._~" and %XX (no quote or backslash can end it), decoded by
    ClickHouse. Grafana's sqlstring format doubles quotes only, and ClickHouse also reads \\' as a quote."""
    return f"decodeURLComponent('${{{variable}:percentencode}}')"



@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    chart: str  # timeseries | bar | table
    sql: str
    unit: str = ""
    description: str = ""
    width: int = 1  # grid columns of 2
    source: str = "sql"  # sql: the query runs on ClickHouse; metrics: the gateway's own counters, sampled


def _rollup(select: str, where: str = "", group: str = "t, series", order: str = "t, series",
            table: str = "fact_log_1m") -> str:
    extra = f" AND {where}" if where else ""
    return (f"SELECT {select} FROM {{db}}.{table} "
            f"WHERE minute >= {{from:DateTime64(3)}} AND minute < {{to:DateTime64(3)}} AND {SERVICE_FILTER} "
            f"AND {SOURCE_FILTER}{extra} "
            f"GROUP BY {group} ORDER BY {order}")


BUCKET_MINUTE = "toStartOfInterval(minute, INTERVAL {bucket:UInt32} SECOND)"
def _whole_hour(hour: str) -> str:
    """The hour starting at ``hour`` has all its minutes in the panel's range (a minute is in it when it
    starts inside it)."""
    return f"{hour} >= {{from:DateTime64(3)}} AND {hour} + INTERVAL 59 MINUTE < {{to:DateTime64(3)}}"


SERVICE_TIER = "dictGetOrDefault('{db}.dict_service', 'tier', toString(service), '')"
SERVICE_TEAM = "dictGetOrDefault('{db}.dict_service', 'team', toString(service), '')"
STATUS = "dictGetOrDefault('{db}.dict_status', '{attribute}', toUInt64(status), '')"
# The same minutes a week earlier, drawn at this week's time.
WEEK_EARLIER = ("SELECT toStartOfInterval(minute + INTERVAL 7 DAY, INTERVAL {bucket:UInt32} SECOND) AS t, "
                "'a week earlier' AS series, sum(events) / {bucket:UInt32} AS value FROM {db}.fact_log_1m "
                "WHERE minute >= {from:DateTime64(3)} - INTERVAL 7 DAY "
                "AND minute < {to:DateTime64(3)} - INTERVAL 7 DAY "
                f"AND {SERVICE_FILTER} AND {SOURCE_FILTER} GROUP BY t")

PANELS: tuple[Panel, ...] = (
    Panel("eps", "Events per second", "timeseries", _rollup(
        f"{BUCKET_MINUTE} AS t, 'total' AS series, sum(events) / {{bucket:UInt32}} AS value",
        group="t", order="t")
        + " UNION ALL " + _rollup(f"{BUCKET_MINUTE} AS t, service AS series, sum(events) / {{bucket:UInt32}} AS value"),
        unit="ev/s", description="All events and per service, by event time.", width=2),
    Panel("sources", "Events per second per source", "timeseries", _rollup(
        f"{BUCKET_MINUTE} AS t, if(source = '', 'unrecorded', source) AS series, "
        "sum(events) / {bucket:UInt32} AS value"),
        unit="ev/s", description=(
            "By the source that read them: http, simulator, otlp, syslog, file, kafka ('unrecorded': rolled "
            "up before the rollup kept the source)")),
    Panel("system_hosts", "System logs by host and severity", "bar", _rollup(
        "host AS label, level AS series, sum(events) AS value", group="label, series",
        order="label, series LIMIT 200", table="fact_log_system_1m"),
        unit="logs", description="Syslog's messages (kind system) over the range, per host and level."),
    Panel("error_rate", "Error rate per service", "timeseries", _rollup(
        f"{BUCKET_MINUTE} AS t, concat(service, ' 5xx') AS series, "
        "round(100 * sum(errors_5xx) / greatest(sum(requests), 1), 2) AS value")
        + " UNION ALL " + _rollup(
        f"{BUCKET_MINUTE} AS t, concat(service, ' ERROR') AS series, "
        "round(100 * sum(error_logs) / greatest(sum(events), 1), 2) AS value"),
        unit="%", description="Share of requests answered 5xx, and share of logs at ERROR or FATAL."),
    Panel("error_rate_tier", "Error rate by service tier and team", "table", _rollup(
        f"if({SERVICE_TIER} = '', '(none)', {SERVICE_TIER}) AS tier, "
        f"if({SERVICE_TEAM} = '', '(none)', {SERVICE_TEAM}) AS team, uniqExact(service) AS services, "
        "sum(requests) AS request_count, sum(errors_5xx) AS server_errors, "
        "round(100 * sum(errors_5xx) / greatest(sum(requests), 1), 2) AS rate_5xx_pct, "
        "round(100 * sum(error_logs) / greatest(sum(events), 1), 2) AS error_log_pct",
        group="tier, team", order="rate_5xx_pct DESC, tier, team LIMIT 20"),
        description="Tier and team from the service catalog (dim_service; '(none)': a service the catalog "
                    "does not list)."),
    Panel("status_codes", "Status codes", "bar", _rollup(
        f"concat(toString(status), ' ', {STATUS.replace('{attribute}', 'reason')}) AS label, "
        f"{STATUS.replace('{attribute}', 'class')} AS series, sum(requests) AS value",
        group="status", order="status", table="fact_log_status_1m"),
        unit="requests", description="Requests per status code over the range, with its reason phrase "
                                     "(dim_status), by class."),
    Panel("status_classes", "Status classes over time", "timeseries", _rollup(
        f"{BUCKET_MINUTE} AS t, '4xx' AS series, sum(errors_4xx) / {{bucket:UInt32}} AS value", group="t", order="t")
        + " UNION ALL " + _rollup(
        f"{BUCKET_MINUTE} AS t, '5xx' AS series, sum(errors_5xx) / {{bucket:UInt32}} AS value", group="t", order="t")
        + " UNION ALL " + _rollup(
        f"{BUCKET_MINUTE} AS t, '2xx/3xx' AS series, "
        f"(sum(requests) - sum(errors_4xx) - sum(errors_5xx)) / {{bucket:UInt32}} AS value", group="t", order="t"),
        unit="req/s"),
    Panel("traffic_week", "Traffic against the same time a week earlier", "timeseries", _rollup(
        f"{BUCKET_MINUTE} AS t, 'now' AS series, sum(events) / {{bucket:UInt32}} AS value", group="t", order="t")
        + f" UNION ALL {WEEK_EARLIER} ORDER BY t, series", unit="ev/s",
        description="Events per second, and those of the same minutes seven days before, drawn over them."),
    Panel("traffic_hours", "Traffic by hour of day and weekday", "bar",
          "SELECT leftPad(toString(calendar.hour_of_day), 2, '0') AS label, calendar.day_name AS series, "
          "round(sum(hourly.events) / (count() * 3600), 2) AS value FROM ("
          + _rollup("toStartOfHour(minute) AS hour, sum(events) AS events", group="hour", order="hour")
          + ") AS hourly INNER JOIN (SELECT hour, hour_of_day, day_of_week, day_name FROM {db}.dim_time FINAL) "
          "AS calendar USING hour GROUP BY label, series, calendar.day_of_week "
          "ORDER BY label, calendar.day_of_week", unit="ev/s",
          description="Mean events per second in each hour of the day (UTC), per weekday (dim_time)."),
    Panel("dead_letters", "Dead-lettered records per minute", "timeseries",
          "SELECT toStartOfInterval(ingest_ts, INTERVAL {bucket:UInt32} SECOND) AS t, "
          "substring(reason, 1, position(concat(reason, ' ('), ' (') - 1) AS series, count() AS value "
          "FROM {db}.dead_letter WHERE ingest_ts >= {from:DateTime64(3)} AND ingest_ts < {to:DateTime64(3)} "
          f"AND {SOURCE_FILTER} GROUP BY t, series ORDER BY t, series", unit="records",
          description="By reason (the part before the offending value)."),
    Panel("latency", "Latency p50 / p95 / p99", "timeseries",
          "SELECT t, concat(service, ' p', q) AS series, round(toFloat64(value), 1) AS value FROM ("
          + _rollup(f"{BUCKET_MINUTE} AS t, service, "
                    "quantilesTDigestIfMerge(0.5, 0.95, 0.99)(latency_q) AS qs",
                    group="t, service", order="t, service", table="fact_log_latency_1m")
          + ") ARRAY JOIN qs AS value, ['50', '95', '99'] AS q ORDER BY t, series",
          unit="ms", description="Request latency quantiles per service (t-digest per minute).", width=2),
    Panel("slow_endpoints", "Slowest endpoints (p99)", "table",
          "SELECT service, endpoint, round(toFloat64(quantilesTDigestIfMerge(0.5, 0.95, 0.99)(latency_q)[3]), 1) "
          "AS p99_ms, sum(requests) AS request_count FROM ("
          f"SELECT service, endpoint, requests, latency_q FROM {{db}}.fact_log_endpoint_1h WHERE {_whole_hour('hour')} "
          f"AND {SERVICE_FILTER} AND {SOURCE_FILTER} "
          "UNION ALL SELECT service, endpoint, requests, latency_q FROM {db}.fact_log_1m "
          "WHERE minute >= {from:DateTime64(3)} AND minute < {to:DateTime64(3)} AND endpoint != '' "
          f"AND NOT ({_whole_hour('toStartOfHour(minute)')}) AND {SERVICE_FILTER} AND {SOURCE_FILTER}"
          ") GROUP BY service, endpoint ORDER BY p99_ms DESC LIMIT 10", unit="ms",
          description="Over the range's whole hours (fact_log_endpoint_1h) and the minutes at its edges."),
    Panel("error_endpoints", "Top error endpoints", "table", _rollup(
        "service, endpoint, sum(errors_5xx) AS server_errors, sum(errors_4xx) AS client_errors, "
        "round(100 * sum(errors_5xx) / greatest(sum(requests), 1), 2) AS rate_5xx_pct",
        where="endpoint != ''", group="service, endpoint", order="server_errors DESC LIMIT 10")),
    Panel("error_messages", "Top error messages", "table", _rollup(
        "service, error_code, message, sum(events) AS events", group="service, error_code, message",
        order="events DESC, service, error_code, message LIMIT 10", table="fact_log_errors_1m"),
        description="Logs at ERROR or FATAL, by their first 120 characters.", width=2),
    Panel("pipeline", "Inserted per second and freshness", "timeseries", "SELECT t, series, value FROM (" + _rollup(
        f"{BUCKET_MINUTE} AS t, 'inserted ev/s' AS series, sum(events) / {{bucket:UInt32}} AS value",
        group="t", order="t", table="fact_log_ingest_1m")
        + " UNION ALL " + _rollup(
        f"{BUCKET_MINUTE} AS t, 'freshness p99 (s)' AS series, "
        "round(quantileTDigestMerge(0.99)(delay_q) / 1000, 3) AS value",
        group="t", order="t", table="fact_log_ingest_1m") + ") ORDER BY t, series",
        description="Rows inserted per second by the minute they were inserted, and event time to insert "
                    "(p99).", width=2),
    Panel("pipeline_live", "Ingested vs inserted, queue and Kafka lag (live)", "timeseries", "",
          description="The gateway's own counters, sampled every 2 s (the last hour; not in Grafana, which "
          "would read them from Prometheus).", width=2, source="metrics"),
    Panel("alerts", "Alerts fired and resolved", "table",
          "SELECT ts, state, severity, rule, subject, round(value, 3) AS value, threshold, message "
          "FROM {db}.alerts WHERE ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)} "
          "AND ({service:String} = '' OR subject = {service:String}) ORDER BY ts DESC LIMIT 50",
          description="Every transition of the watchdog's alerts (analytics.alerts).", width=2),
)

PANELS_BY_ID = {panel.id: panel for panel in PANELS}
SQL_PANELS = tuple(panel for panel in PANELS if panel.source == "sql")


def grafana_sql(panel: Panel, database: str) -> str:
    """The panel's query in Grafana's dialect: $__timeFilter, $__timeInterval, $__fromTime and $__toTime
    (a range shifted in time), $__interval_s, and the ${service} and ${source} variables."""
    sql = panel.sql.replace("{db}", database)
    sql = TIME_FILTER.sub(r"$__timeFilter(\1)", sql)
    sql = BUCKET.sub(r"$__timeInterval(\1)", sql)
    sql = sql.replace("{from:DateTime64(3)}", "$__fromTime").replace("{to:DateTime64(3)}", "$__toTime")
    for variable in FILTERS:
        value = grafana_variable(variable)
        sql = _any_filter(variable).sub(lambda m, v=value: f"({v} = '{GRAFANA_ALL}' OR {m.group(1)} = {v})", sql)
    sql = sql.replace("{bucket:UInt32}", "$__interval_s")
    leftover = re.search(r"(?<!\$)\{\w+:[^}]+\}", sql)  # a named parameter left; ${var:format} is Grafana's
    if leftover:
        raise ValueError(f"panel {panel.id}: no Grafana form for {leftover.group(0)}")
    return sql


@dataclass(frozen=True)
class PanelRange:
    """Validated parameters of one panel request."""

    start_ms: int
    end_ms: int
    service: str = ""
    source: str = ""

    MAX_POINTS = 240

    def __post_init__(self) -> None:
        check_window(self.start_ms, self.end_ms, {variable: getattr(self, variable) for variable in FILTERS})

    @property
    def bucket_s(self) -> int:
        """A whole number of minutes giving at most MAX_POINTS points (the rollup is per minute)."""
        seconds = (self.end_ms - self.start_ms) / 1000 / self.MAX_POINTS
        return max(60, int(-(-seconds // 60)) * 60)

    def parameters(self) -> dict[str, object]:
        from datetime import UTC, datetime

        return {"from": datetime.fromtimestamp(self.start_ms / 1000, UTC),
                "to": datetime.fromtimestamp(self.end_ms / 1000, UTC),
                "bucket": self.bucket_s, "service": self.service, "source": self.source}


SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]{0,64}")


def check_window(start_ms: int, end_ms: int, names: dict[str, str]) -> None:
    """What every dashboard request is checked for before any SQL: a range of at most 400 days that
    ends after it starts, and names (service, source, host) of the characters ingest stores."""
    if not 0 < start_ms < end_ms:
        raise ValueError("from must be before to (epoch milliseconds)")
    if end_ms - start_ms > 400 * 86_400_000:
        raise ValueError("range longer than 400 days")
    for variable, value in names.items():
        if not SERVICE_NAME.fullmatch(value):
            raise ValueError(f"{variable}: letters, digits, '.', '_' and '-' only (at most 64)")


def panel_sql(panel: Panel, database: str) -> str:
    return panel.sql.replace("{db}", database)
