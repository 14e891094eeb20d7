"""POST /v1/warehouse/{table}: inserts from processor workers into the store this process owns.

The body is an Arrow IPC stream; ``token`` is the insert_deduplication_token, so a worker's retry
or a replay after its crash is stored once, exactly as with a ClickHouse server.
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from logpipe.events import ALERT_SCHEMA, DEAD_LETTER_SCHEMA, FACT_SCHEMA
from logpipe.gateway.deps import StoreDep
from logpipe.gateway.security import ADMIN
from logpipe.warehouse.errors import StoreError
from logpipe.warehouse.remote import read_arrow_ipc

router = APIRouter(prefix="/v1/warehouse", tags=["warehouse"], dependencies=[ADMIN])
SCHEMAS = {"fact_log": FACT_SCHEMA, "dead_letter": DEAD_LETTER_SCHEMA, "alerts": ALERT_SCHEMA}


@router.post("/{table}", summary="Insert an Arrow IPC batch (processor workers)",
             openapi_extra={"requestBody": {"content": {"application/vnd.apache.arrow.stream": {}}}})
async def insert_batch(table: Literal["fact_log", "dead_letter", "alerts"], request: Request, store: StoreDep,
                       token: str | None = None) -> dict[str, int]:
    try:
        data = read_arrow_ipc(await request.body())
    except (pa.ArrowInvalid, OSError) as exc:
        raise HTTPException(400, {"code": None, "message": f"not an Arrow IPC stream: {exc}"}) from None
    if not data.schema.equals(SCHEMAS[table]):
        # ClickHouse would fill missing columns with defaults; a batch must be whole rows
        raise HTTPException(400, {"code": None, "message": f"batch schema is not {table}'s: {data.schema}"})
    try:
        await run_in_threadpool(store.insert, table, data, token)
    except StoreError as exc:
        raise HTTPException(503 if exc.retryable else 400, {"code": exc.code, "message": str(exc)}) from None
    return {"rows": data.num_rows}
