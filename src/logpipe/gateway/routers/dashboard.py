"""The built-in dashboard: the page at /, its static assets, and the panel data it draws."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from logpipe.dashboard.panels import PANELS, PANELS_BY_ID, PanelRange, panel_sql
from logpipe.gateway.deps import StoreDep
from logpipe.warehouse.store import StoreError

router = APIRouter(tags=["dashboard"])
STATIC = resources.files("logpipe.dashboard") / "static"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "vendor/echarts.min.js": "text/javascript"}


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@router.get("/static/{asset:path}", include_in_schema=False)
async def static_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:  # a fixed list: no path ever reaches the file system from the URL
        raise HTTPException(404, "no such asset")
    path = STATIC / asset
    if not path.is_file():
        raise HTTPException(404, f"{asset} is missing: run `make up` (it copies the charting library from npm)")
    return FileResponse(str(path), media_type=ASSETS[asset])


@router.get("/api/panels")
async def list_panels() -> list[dict]:
    return [{"id": p.id, "title": p.title, "chart": p.chart, "unit": p.unit, "description": p.description,
             "width": p.width} for p in PANELS]


def _epoch_ms(value: object) -> object:
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000)
    return value


def _readable(value: object) -> object:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value


@router.get("/api/panels/{panel_id}")
async def panel_data(
    panel_id: str,
    request: Request,
    store: StoreDep,
    start_ms: Annotated[int | None, Query(alias="from", description="Epoch ms; default an hour ago.")] = None,
    end_ms: Annotated[int | None, Query(alias="to", description="Epoch ms; default now.")] = None,
    service: Annotated[str, Query(description="One service, or empty for all.")] = "",
) -> Response:
    panel = PANELS_BY_ID.get(panel_id)
    if panel is None:
        raise HTTPException(404, f"no panel {panel_id!r}")
    now_ms = int(time.time() * 1000)
    try:
        window = PanelRange(start_ms if start_ms is not None else now_ms - 3_600_000,
                            end_ms if end_ms is not None else now_ms, service)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if panel.source == "metrics":
        history = getattr(request.app.state, "history", None)
        if history is None:
            raise HTTPException(404, "this process keeps no pipeline history")
        return Response(orjson.dumps({"id": panel.id, "columns": ["t", "series", "value"], "bucket_s": 2,
                                      "rows": history.rows(window.start_ms, window.end_ms)}),
                        media_type="application/json")
    try:
        columns, rows = await run_in_threadpool(store.query_rows, panel_sql(panel, store.database),
                                                window.parameters())
    except StoreError as exc:
        raise HTTPException(503 if exc.retryable else 500, {"code": exc.code, "message": str(exc)}) from None
    convert = _readable if panel.chart == "table" else _epoch_ms  # charts want epoch ms, tables text
    body = {"id": panel.id, "columns": columns, "bucket_s": window.bucket_s,
            "rows": [[convert(v) for v in row] for row in rows]}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


@router.get("/api/services")
async def services(store: StoreDep) -> list[str]:
    rows = await run_in_threadpool(store.query_rows, f"SELECT DISTINCT service FROM {store.database}.fact_log_1m "
                                   "WHERE minute > now() - INTERVAL 1 DAY ORDER BY service")
    return [row[0] for row in rows[1]]
