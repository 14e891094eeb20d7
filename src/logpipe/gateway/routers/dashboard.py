"""The built-in dashboard: the page at /, its static assets, and the panel data it draws (read role).

``/?token=<read token>`` logs a browser in: the token goes into an HttpOnly cookie and the address
loses it (a redirect to ``/``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from logpipe.auth.tokens import Role
from logpipe.dashboard.panels import PANELS, PANELS_BY_ID, PanelRange, panel_sql
from logpipe.dashboard.search import COLUMNS, LogSearch
from logpipe.gateway.answers import in_thread
from logpipe.gateway.deps import ServicesDep, StoreDep
from logpipe.gateway.security import READ, caller, registry_of, set_login_cookie
from logpipe.warehouse import queries

router = APIRouter(tags=["dashboard"])
LOGIN_NEEDED = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>logpipe: log in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>logpipe</h1><p>This dashboard needs a token of the read role.</p>
<p>Open the address <code>logpipe up</code> printed when it started (<code>http://&lt;host&gt;:&lt;port&gt;/?token=...</code>),
or print it again with <code>logpipe url</code> on the machine that runs logpipe.</p></body></html>"""
STATIC = resources.files("logpipe.dashboard") / "static"
ASSETS = {"app.js": "text/javascript", "common.js": "text/javascript", "logs.js": "text/javascript",
          "dead-letters.js": "text/javascript", "kafka.js": "text/javascript",
          "style.css": "text/css",
          "vendor/echarts.min.js": "text/javascript"}


@router.get("/", include_in_schema=False, response_model=None)
async def index(request: Request, token: str | None = None) -> Response:
    if token is not None:
        identity = registry_of(request).identify(token)
        if identity is None or not identity.may(Role.READ):
            return HTMLResponse(LOGIN_NEEDED, status_code=401)
        response = RedirectResponse("/", status_code=303)
        set_login_cookie(response, token, secure=request.url.scheme == "https")
        return response
    return _page(request, "index.html")


@router.get("/logs", include_in_schema=False, response_model=None)
async def logs_page(request: Request) -> Response:
    """Single log lines: search, lookup by id, live tail (logs.js)."""
    return _page(request, "logs.html")


@router.get("/dead-letters", include_in_schema=False, response_model=None)
async def dead_letters_page(request: Request) -> Response:
    """Dead letters by reason, their raw records, and replay (dead-letters.js)."""
    return _page(request, "dead-letters.html")


@router.get("/kafka", include_in_schema=False, response_model=None)
async def kafka_page(request: Request) -> Response:
    """Topics, partitions, offsets, lag and the newest dead-letter messages (kafka.js)."""
    return _page(request, "kafka.html")


def _page(request: Request, name: str) -> Response:
    identity = caller(request)
    if identity is None or not identity.may(Role.READ):
        return HTMLResponse(LOGIN_NEEDED, status_code=401)
    return FileResponse(str(STATIC / name), media_type="text/html")


@router.get("/static/{asset:path}", include_in_schema=False, dependencies=[READ])
async def static_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:  # a fixed list: no path ever reaches the file system from the URL
        raise HTTPException(404, "no such asset")
    path = STATIC / asset
    if not path.is_file():
        raise HTTPException(404, f"{asset} is missing from this installation of logpipe: reinstall the package")
    return FileResponse(str(path), media_type=ASSETS[asset])


@router.get("/api/panels", dependencies=[READ])
async def list_panels() -> list[dict]:
    return [{"id": p.id, "title": p.title, "chart": p.chart, "unit": p.unit, "description": p.description,
             "width": p.width, "source": p.source} for p in PANELS]


def _epoch_ms(value: object) -> object:
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    return value


def _readable(value: object) -> object:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value


@router.get("/api/panels/{panel_id}", dependencies=[READ])
async def panel_data(
    panel_id: str,
    services: ServicesDep,
    store: StoreDep,
    start_ms: Annotated[int | None, Query(alias="from", description="Epoch ms; default an hour ago.")] = None,
    end_ms: Annotated[int | None, Query(alias="to", description="Epoch ms; default now.")] = None,
    service: Annotated[str, Query(description="One service, or empty for all.")] = "",
    source: Annotated[str, Query(description="One source (http, otlp, syslog, file, ...), or empty for all.")] = "",
) -> Response:
    panel = PANELS_BY_ID.get(panel_id)
    if panel is None:
        raise HTTPException(404, f"no panel {panel_id!r}")
    now_ms = int(time.time() * 1000)
    try:
        window = PanelRange(start_ms if start_ms is not None else now_ms - 3_600_000,
                            end_ms if end_ms is not None else now_ms, service, source)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if panel.source == "metrics":
        history = services.history
        if history is None:
            raise HTTPException(404, "this process keeps no pipeline history")
        return Response(orjson.dumps({"id": panel.id, "columns": ["t", "series", "value"], "bucket_s": 2,
                                      "rows": history.rows(window.start_ms, window.end_ms)}),
                        media_type="application/json")
    columns, rows = await _query(store, panel_sql(panel, store.database), window.parameters())
    convert = _readable if panel.chart == "table" else _epoch_ms  # charts want epoch ms, tables text
    body = {"id": panel.id, "columns": columns, "bucket_s": window.bucket_s,
            "rows": [[convert(v) for v in row] for row in rows]}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("/api/services", dependencies=[READ])
async def services(store: StoreDep) -> list[str]:
    rows = await run_in_threadpool(store.query_limited, queries.in_database(queries.SERVICES, store.database))
    return [row[0] for row in rows[1]]


@router.get("/api/sources", dependencies=[READ])
async def sources(store: StoreDep) -> list[str]:
    rows = await run_in_threadpool(store.query_limited, queries.in_database(queries.SOURCES, store.database))
    return [row[0] for row in rows[1]]


def _search(start_ms: int | None, end_ms: int | None, **filters: Any) -> LogSearch:
    now_ms = int(time.time() * 1000)
    try:
        return LogSearch(start_ms if start_ms is not None else now_ms - 3_600_000,
                         end_ms if end_ms is not None else now_ms + 60_000, **filters)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


async def _query(store: Any, sql: str, parameters: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    """One of the dashboard's own queries, in a sandbox session."""
    return await in_thread(store.query_limited, sql, parameters, 30.0)


def _reader(store: Any) -> Any:
    """What a search runs its queries with: in the sandbox, epoch ms for times."""
    def run(sql: str, parameters: dict[str, Any]) -> list[list[Any]]:
        _, rows = store.query_limited(queries.in_database(sql, store.database), parameters, 30.0)
        return [[_epoch_ms(v) for v in row] for row in rows]

    return run


class LogFilters:
    """The filters of /api/logs and /api/logs/tail, as query parameters."""

    def __init__(
        self,
        start_ms: Annotated[int | None, Query(alias="from", description="Epoch ms; default an hour ago.")] = None,
        end_ms: Annotated[int | None, Query(alias="to", description="Epoch ms; default a minute ahead.")] = None,
        service: str = "", level: str = "", status_class: Annotated[int, Query(ge=0, le=5)] = 0, host: str = "",
        source: str = "", kind: str = "", endpoint: str = "", trace_id: str = "", user_id: str = "",
        event_id: str = "",
        text: Annotated[str, Query(description='Words and "quoted phrases", each in the message.')] = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ):
        self.start_ms, self.end_ms = start_ms, end_ms
        self.filters = {"service": service, "level": level, "status_class": status_class, "host": host,
                        "source": source, "kind": kind, "endpoint": endpoint, "trace_id": trace_id,
                        "user_id": user_id, "event_id": event_id, "text": text, "limit": limit}


@router.get("/api/logs", dependencies=[READ])
async def search_logs(store: StoreDep, filters: Annotated[LogFilters, Depends()],
                      before_ts: int = 0, before_id: str = "") -> Response:
    """Single rows of fact_log, newest first; ``next`` is the cursor of the following page (None at the end)."""
    search = _search(filters.start_ms, filters.end_ms, **filters.filters, before_ts=before_ts, before_id=before_id)
    rows = await in_thread(search.newest_first, _reader(store))
    ts, event_id = COLUMNS.index("ts"), COLUMNS.index("event_id")
    cursor = {"before_ts": rows[-1][ts], "before_id": rows[-1][event_id]} if len(rows) == search.limit else None
    return Response(orjson.dumps({"columns": COLUMNS, "rows": rows, "next": cursor}), media_type="application/json")


@router.get("/api/logs/tail", dependencies=[READ])
async def tail_logs(store: StoreDep, filters: Annotated[LogFilters, Depends()], after_ingest: int = 0) -> Response:
    """The rows inserted after ``after_ingest`` (epoch ms of ingest_ts), oldest first, for live tail;
    ``after_ingest`` in the answer is the cursor of the next call."""
    search = _search(filters.start_ms, filters.end_ms, **filters.filters)
    rows = await in_thread(_reader(store), search.tail_sql(), search.parameters(after_ingest=after_ingest))
    ingest = COLUMNS.index("ingest_ts")
    cursor = max((row[ingest] for row in rows), default=after_ingest)
    return Response(orjson.dumps({"columns": COLUMNS, "rows": rows, "after_ingest": cursor}),
                    media_type="application/json")
