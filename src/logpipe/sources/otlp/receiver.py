"""The OTLP/HTTP logs receiver, as the OTLP specification has it answer:

- ``POST /v1/logs``, ``application/x-protobuf`` or ``application/json``, plain or gzip (zstd too);
- 200 with an ``ExportLogsServiceResponse`` in the request's encoding once the records are in
  ClickHouse, its ``partial_success`` counting the records refused (each one a dead letter with its
  reason) and naming the first reasons;
- 429 or 503 with ``Retry-After`` when the pipeline is full, shutting down, or not durable in time,
  which OTLP exporters retry; 400 for a body that is no OTLP request, 413 past the body limit;
- the ingest role's token, which exporters send as a header (``OTEL_EXPORTER_OTLP_HEADERS``).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, FastAPI, Request, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from starlette.concurrency import run_in_threadpool

from logpipe import metrics
from logpipe.auth.tokens import TokenRegistry
from logpipe.gateway.body import BodyTooLarge, UnsupportedEncoding, decompressed, read_body
from logpipe.gateway.security import Ingest
from logpipe.sources.otlp import wire
from logpipe.sources.otlp.config import OtlpConfig
from logpipe.sources.otlp.mapping import records_of_body
from logpipe.transport.intake import Intake, Overloaded, ShuttingDown

COMPONENT = "otlp"
log = logging.getLogger(__name__)
PROTOBUF, JSON = "application/x-protobuf", "application/json"


def _answer(response: ExportLogsServiceResponse, json: bool, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    if json:
        from google.protobuf import json_format

        return Response(json_format.MessageToJson(response, indent=None), status_code=status, media_type=JSON,
                        headers=headers)
    return Response(response.SerializeToString(), status_code=status, media_type=PROTOBUF, headers=headers)


def _error(status: int, message: str, json: bool, retry_after_s: float | None = None) -> Response:
    """An OTLP error answer: a ``google.rpc.Status`` is what the specification names; its message is the
    part exporters log, so that is what is sent (as plain text for protobuf clients)."""
    headers = {"Retry-After": str(max(1, round(retry_after_s)))} if retry_after_s is not None else None
    if json:
        from fastapi.responses import JSONResponse

        return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)
    return Response(message.encode(), status_code=status, media_type="text/plain", headers=headers)


def create_otlp_app(intake: Intake, config: OtlpConfig, tokens: TokenRegistry) -> FastAPI:
    app = FastAPI(title="logpipe OTLP receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tokens = tokens
    router = APIRouter()
    metrics.register_component(COMPONENT)
    wire.prepare()

    @router.post("/v1/logs")
    async def export_logs(request: Request, sender: Ingest) -> Response:
        json = request.headers.get("content-type", PROTOBUF).split(";")[0].strip().lower() == JSON
        try:
            body = await read_body(request, config.max_body_bytes)
            body = await run_in_threadpool(decompressed, body, request.headers.get("content-encoding", ""),
                                           config.max_body_bytes)
            records = await run_in_threadpool(records_of_body, body, json)
        except BodyTooLarge as exc:
            return _error(413, str(exc), json)
        except UnsupportedEncoding as exc:
            return _error(415, str(exc), json)
        except ValueError as exc:
            return _error(400, str(exc), json)
        metrics.EVENTS_RECEIVED.labels(component=COMPONENT).inc(len(records))
        metrics.BYTES_RECEIVED.labels(component=COMPONENT).inc(len(body))
        if not len(records):
            return _answer(ExportLogsServiceResponse(), json)
        try:
            future = await run_in_threadpool(intake.submit, records, len(records), COMPONENT, sender.name)
        except Overloaded as exc:
            metrics.EVENTS_DROPPED.labels(component=COMPONENT).inc(len(records))
            return _error(429, "pipeline at capacity, retry later", json, exc.retry_after_s)
        except ShuttingDown:
            return _error(503, "shutting down; nothing was stored", json, 5)
        except Exception as exc:  # a defect: the exporter retries, nothing was stored
            log.exception("OTLP: %d records not handed on", len(records))
            return _error(503, f"not stored: {exc}", json, 5)
        try:
            result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout=config.ack_timeout_s)
        except TimeoutError:
            return _error(503, "not durable within the ack timeout", json, 5)
        except Exception as exc:
            return _error(503, f"not durable: {exc}", json, 5)
        metrics.EVENTS_SENT.labels(component=COMPONENT).inc(result.accepted)
        metrics.EVENTS_ERRORS.labels(component=COMPONENT).inc(result.rejected)
        response = ExportLogsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_log_records = result.rejected
            response.partial_success.error_message = "; ".join(
                f"record {e['index']}: {e['reason']}" for e in result.errors[:5])
        return _answer(response, json)

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app
