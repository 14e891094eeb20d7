"""POST /v1/query: read-only SQL against the store this process owns."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import PipelineDep
from logpipe.warehouse.store import StoreError

router = APIRouter(prefix="/v1", tags=["query"])
MAX_SQL_BYTES = 100_000


@router.post("/query", summary="Run a read-only SQL query",
             openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}},
                                                        "application/json": {"schema": {
                                                            "type": "object",
                                                            "properties": {"sql": {"type": "string"}}}}}}})
async def run_query(request: Request, pipeline: PipelineDep) -> Response:
    body = await request.body()
    if len(body) > MAX_SQL_BYTES:
        raise HTTPException(413, "query too long")
    sql = body.decode("utf-8", "replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            sql = orjson.loads(body)["sql"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise HTTPException(400, 'expected {"sql": "..."}') from None
    if not sql.strip():
        raise HTTPException(400, "empty query")
    if pipeline.store is None:
        raise HTTPException(404, "this gateway has no store; query the processor's or ClickHouse directly")
    try:
        columns, rows = await run_in_threadpool(pipeline.store.query_rows, sql, None, True)
    except StoreError as exc:
        raise HTTPException(400, {"code": exc.code, "message": str(exc)}) from None
    return Response(orjson.dumps({"columns": columns, "rows": rows}, default=str,
                                 option=orjson.OPT_NON_STR_KEYS), media_type="application/json")
