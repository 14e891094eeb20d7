"""Liveness for anyone (``/ping``), health and metrics for the read role."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from logpipe import metrics
from logpipe.gateway.deps import ServicesDep
from logpipe.gateway.security import READ

router = APIRouter(tags=["health"])


@router.get("/ping", summary="Liveness; the one route that needs no token")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/healthz", dependencies=[READ])
async def healthz(services: ServicesDep, response: Response) -> dict:
    report = await run_in_threadpool(services.health)
    if report["status"] != "ok":
        response.status_code = 503
    return report


@router.get("/metrics", dependencies=[READ])
async def prometheus_metrics() -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
