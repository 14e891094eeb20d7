"""POST /v1/logs: a JSON object, a JSON array or NDJSON, plain, gzip or zstd; answers once the batch is durable."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from logpipe.auth.tokens import Identity
from logpipe.gateway.body import BodyTooLarge, UnsupportedEncoding, decompressed, line_stats, read_body, to_ndjson
from logpipe.gateway.deps import IntakeDep, Services, ServicesDep
from logpipe.gateway.security import Ingest
from logpipe.transport.intake import Intake, KeyReused, Overloaded, ShuttingDown

router = APIRouter(prefix="/v1", tags=["ingest"])
MAX_KEY_LENGTH = 255


def _retry_later(status: int, detail: str, retry_after_s: float) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status,
                        headers={"Retry-After": str(max(1, round(retry_after_s)))})


@router.post("/logs", summary="Ingest log events",
             responses={400: {"description": "Not JSON, NDJSON or a valid compressed body"},
                        413: {"description": "Body or an event too large (after decompression)"},
                        415: {"description": "Unsupported Content-Encoding"},
                        422: {"description": "Idempotency-Key reused with another body"},
                        429: {"description": "Overloaded"},
                        503: {"description": "Not durable in time, or shutting down: nothing is claimed"}})
async def ingest_logs(request: Request, services: ServicesDep, intake: IntakeDep,
                      sender: Ingest) -> JSONResponse:
    """Answers 200 once every accepted event is in ClickHouse and every rejected one is a dead letter,
    with the counts and each rejected record's position and reason. With an ``Idempotency-Key`` header,
    a retry of the same body with the same key stores its events once (README: what and for how long)."""
    config = services.config
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
        raise HTTPException(400, f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters")
    declared = request.headers.get("content-length", "")
    compressed = request.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity")
    reserved = config.max_body_bytes if compressed or not declared.isdigit() else min(int(declared),
                                                                                       config.max_body_bytes)
    if not services.in_flight.reserve(reserved):
        return _retry_later(429, "too many bytes of requests in flight, retry later", 1)
    try:
        return await _ingest(request, services, intake, sender, key)
    finally:
        services.in_flight.release(reserved)


async def _ingest(request: Request, services: Services, intake: Intake, sender: Identity,
                  key: str | None) -> JSONResponse:
    config = services.config
    try:
        body = await read_body(request, config.max_body_bytes)
        body = await run_in_threadpool(decompressed, body, request.headers.get("content-encoding", ""),
                                       config.max_body_bytes)
        payload = to_ndjson(body)
        count, line, size = line_stats(payload)
    except BodyTooLarge as exc:
        raise HTTPException(413, f"{exc} (LOGPIPE_MAX_BODY_BYTES)") from None
    except UnsupportedEncoding as exc:
        raise HTTPException(415, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if count == 0:
        return JSONResponse({"accepted": 0, "rejected": 0, "errors": []})
    if size > config.max_event_bytes:
        raise HTTPException(413, f"line {line} is an event of {size:,} bytes, more than the "
                            f"{config.max_event_bytes:,} of LOGPIPE_MAX_EVENT_BYTES")
    try:
        # in a worker thread: with Kafka, submit validates and produces the batch, CPU work that would
        # otherwise hold up every other request on the event loop
        future = await run_in_threadpool(intake.submit, payload, count, "http", sender.name, key)
    except Overloaded as exc:
        return _retry_later(429, "pipeline at capacity, retry later", exc.retry_after_s)
    except ShuttingDown:
        return _retry_later(503, "shutting down; nothing was stored", 5)
    except KeyReused as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        # shield: a timed-out request must not cancel the write, which may still land
        result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=config.ack_timeout_s)
    except TimeoutError:
        hint = ("a retry with the same Idempotency-Key stores it once" if key else
                "it may still be stored: send an Idempotency-Key for retries that store it once")
        return _retry_later(503, f"not durable within the ack timeout; {hint}", 5)
    except Exception as exc:
        return _retry_later(503, f"not durable: {exc}", 5)
    return JSONResponse({"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors})
