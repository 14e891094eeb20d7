"""POST /v1/query: read-only SQL against the store this process owns."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import StoreDep
from logpipe.warehouse.store import StoreError

router = APIRouter(prefix="/v1", tags=["query"])
MAX_SQL_BYTES = 100_000


@router.post("/query", summary="Run a read-only SQL query",
             openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}},
                                                        "application/json": {"schema": {
                                                            "type": "object",
                                                            "properties": {"sql": {"type": "string"},
                                                                           "parameters": {"type": "object"}}}}}}})
async def run_query(request: Request, store: StoreDep) -> Response:
    """Plain text is the SQL; JSON is ``{"sql": ..., "parameters": {...}}`` with the values bound by
    ClickHouse (``{name:Type}`` placeholders), never formatted into the text."""
    body = await request.body()
    if len(body) > MAX_SQL_BYTES:
        raise HTTPException(413, "query too long")
    sql, parameters = body.decode("utf-8", "replace"), None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            document = orjson.loads(body)
            sql, parameters = document["sql"], document.get("parameters") or None
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise HTTPException(400, 'expected {"sql": "...", "parameters": {...}}') from None
    if not sql.strip():
        raise HTTPException(400, "empty query")
    try:
        columns, rows = await run_in_threadpool(store.query_rows, sql, parameters, True)
    except StoreError as exc:
        raise HTTPException(503 if exc.retryable else 400, {"code": exc.code, "message": str(exc)}) from None
    return Response(orjson.dumps({"columns": columns, "rows": rows}, default=str,
                                 option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
