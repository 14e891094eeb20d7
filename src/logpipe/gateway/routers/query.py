"""POST /v1/query: a user's read-only SQL against the store this process owns, in the sandbox."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import StoreDep
from logpipe.gateway.security import READ
from logpipe.warehouse.errors import StoreBusy, StoreError
from logpipe.warehouse.sandbox import QueryRefused

router = APIRouter(prefix="/v1", tags=["query"], dependencies=[READ])
MAX_SQL_BYTES = 100_000


@router.post("/query", summary="Run a read-only SQL query",
             responses={400: {"description": "Refused by the sandbox, invalid, or past a limit"},
                        429: {"description": "Too many queries running"}},
             openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}},
                                                        "application/json": {"schema": {
                                                            "type": "object",
                                                            "properties": {"sql": {"type": "string"},
                                                                           "parameters": {"type": "object"}}}}}}})
async def run_query(request: Request, store: StoreDep) -> Response:
    """Plain text is the SQL; JSON is ``{"sql": ..., "parameters": {...}}`` with the values bound by
    ClickHouse (``{name:Type}`` placeholders), never formatted into the text.

    ClickHouse parses the query, and only a read of the analytics database runs (``warehouse.sandbox``),
    under the time, memory, result and concurrency limits (``LOGPIPE_QUERY_*``)."""
    body = await request.body()
    if len(body) > MAX_SQL_BYTES:
        raise HTTPException(413, f"query longer than {MAX_SQL_BYTES} bytes")
    sql, parameters = body.decode("utf-8", "replace"), None
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            document = orjson.loads(body)
            sql, parameters = document["sql"], document.get("parameters") or None
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise HTTPException(400, 'expected {"sql": "...", "parameters": {...}}') from None
        if not isinstance(sql, str) or not (parameters is None or isinstance(parameters, dict)):
            raise HTTPException(400, 'expected {"sql": "...", "parameters": {...}}')
    if not sql.strip():
        raise HTTPException(400, "empty query")
    try:
        columns, rows = await run_in_threadpool(store.query_user, sql, parameters)
    except QueryRefused as exc:
        raise HTTPException(400, {"code": None, "message": f"refused: {exc}"}) from None
    except StoreBusy as exc:
        return JSONResponse({"detail": {"code": None, "message": str(exc)}}, status_code=429,
                            headers={"Retry-After": "1"})
    except StoreError as exc:  # past a limit is the query's fault; unreachable is the store's
        status = 503 if exc.retryable and not exc.limit_exceeded else 400
        raise HTTPException(status, {"code": exc.code, "message": str(exc)}) from None
    reply = orjson.dumps({"columns": columns, "rows": rows}, default=str, option=orjson.OPT_NON_STR_KEYS)
    limit = store.config.limits.max_result_bytes
    if len(reply) > limit:  # the engine counts a constant column's value once; the reply counts every byte
        raise HTTPException(400, {"code": 396, "message": f"the result is {len(reply):,} bytes as JSON, more than "
                                  f"the {limit:,} of LOGPIPE_QUERY_MAX_RESULT_BYTES: select less"})
    return Response(reply, media_type="application/json")
