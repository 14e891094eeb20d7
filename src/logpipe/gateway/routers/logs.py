"""POST /v1/logs: JSON object, JSON array or NDJSON; answers once the batch is durable."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from logpipe.gateway.deps import PipelineDep
from logpipe.gateway.security import Ingest
from logpipe.pipeline import Overloaded, ShuttingDown

router = APIRouter(prefix="/v1", tags=["ingest"])


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def to_ndjson(body: bytes) -> tuple[bytes, int]:
    """Any accepted body shape as NDJSON plus its record count; raises ValueError when unusable."""
    text = body.strip()
    if not text:
        raise ValueError("empty body")
    if text[:1] == b"[":
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON array: {exc}") from exc
        return b"".join(orjson.dumps(item) + b"\n" for item in items), len(items)
    if text[:1] == b"{":
        try:
            single = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NDJSON: more than one document
        else:
            return orjson.dumps(single) + b"\n", 1
    count = sum(1 for line in text.split(b"\n") if line.strip())
    return text + b"\n", count


def _retry_later(status: int, detail: str, retry_after_s: float) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status,
                        headers={"Retry-After": str(max(1, round(retry_after_s)))})


@router.post("/logs", summary="Ingest log events",
             responses={413: {"description": "Body too large"}, 429: {"description": "Overloaded"},
                        503: {"description": "Not durable in time or shutting down"}})
async def ingest_logs(request: Request, pipeline: PipelineDep, sender: Ingest) -> JSONResponse:
    config = pipeline.settings.gateway()
    try:
        body = await read_body(request, config.max_body_bytes)
    except BodyTooLarge:
        raise HTTPException(413, f"body exceeds {config.max_body_bytes} bytes") from None
    try:
        payload, count = to_ndjson(body)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if count == 0:
        return JSONResponse({"accepted": 0, "rejected": 0, "errors": []})
    try:
        # in a worker thread: with Kafka, submit validates and produces the batch, CPU work that would
        # otherwise hold up every other request on the event loop
        future = await run_in_threadpool(pipeline.submit, payload, count, "http", sender.name)
    except Overloaded as exc:
        return _retry_later(429, "pipeline at capacity, retry later", exc.retry_after_s)
    except ShuttingDown:
        return _retry_later(503, "shutting down", 5)
    try:
        # shield: a timed-out request must not cancel the write, which may still land
        result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=config.ack_timeout_s)
    except TimeoutError:
        return _retry_later(503, "not durable within the ack timeout; the batch may still be stored, so a retry "
                            "may store it twice", 5)
    except Exception as exc:
        return _retry_later(503, f"not durable: {exc}", 5)
    return JSONResponse({"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors})
