"""The Grafana dashboard, generated from the same panel definitions as the built-in one.

Hand-built JSON rather than grafana-foundation-sdk: the dashboard is a few dozen fields per panel,
a test proves the checked-in file equals this output, and no extra dependency is needed for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from logpipe.dashboard.panels import GRAFANA_ALL, SQL_PANELS, Panel, grafana_sql
from logpipe.warehouse import queries

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "logpipe-clickhouse"}
FORMAT_TIMESERIES, FORMAT_TABLE = 0, 1
VISUALIZATION = {"timeseries": "timeseries", "bar": "barchart", "table": "table"}


def _panel(panel: Panel, index: int, x: int, y: int, database: str) -> dict[str, Any]:
    timeseries = panel.chart == "timeseries"
    return {
        "id": index + 1,
        "type": VISUALIZATION[panel.chart],
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": 12 * panel.width, "h": 8},
        "fieldConfig": {"defaults": {"unit": panel.unit or "short"}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [{
            "refId": "A",
            "datasource": DATASOURCE,
            "editorType": "sql",
            "format": FORMAT_TIMESERIES if timeseries else FORMAT_TABLE,
            "queryType": "timeseries" if timeseries else "table",
            "rawSql": grafana_sql(panel, database),
        }],
    }


def _variable(name: str, label: str, query: str, database: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": queries.in_database(query, database),
        "includeAll": True,
        "allValue": GRAFANA_ALL,
        "multi": False,
        "refresh": 2,
        "current": {"selected": True, "text": "All", "value": "$__all"},
    }


def dashboard(database: str = "analytics") -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for index, panel in enumerate(SQL_PANELS):
        if x + 12 * panel.width > 24:
            x, y = 0, y + 8
        panels.append(_panel(panel, index, x, y, database))
        x += 12 * panel.width
    return {
        "uid": "logpipe-overview",
        "title": "logpipe",
        "tags": ["logpipe"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [_variable("service", "Service", queries.SERVICES_ALL_TIME, database),
                                _variable("source", "Source", queries.SOURCES_ALL_TIME, database)]},
        "panels": panels,
    }


def dashboard_json(database: str = "analytics") -> bytes:
    return orjson.dumps(dashboard(database), option=orjson.OPT_INDENT_2) + b"\n"
