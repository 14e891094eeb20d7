"""The HTTP API of logpipe's processes, as FastAPI apps.

``create_app`` is the gateway of ``logpipe up`` and ``logpipe gateway``: ingest, simulator control,
read-only queries, health and metrics. ``create_store_app`` is what ``logpipe process`` and
``logpipe spark`` serve: health and metrics, and when the process owns an embedded store, queries and
worker inserts into it. Every route but ``/ping`` needs a token (``gateway.security``); the OpenAPI
document is served to the read role at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from logpipe.auth.tokens import TokenRegistry
from logpipe.gateway.config import GatewayConfig
from logpipe.gateway.deps import Services
from logpipe.gateway.routers import control, dashboard, dead_letters, health, kafka, logs, query, simulator, warehouse
from logpipe.gateway.security import READ
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.store import Store

VERSION = "0.1.0"


def _app(title: str, description: str, services: Services, tokens: TokenRegistry,
         routers: list[APIRouter]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(services.start)
        try:
            yield
        finally:
            # uvicorn has stopped taking requests and finished the ones in flight
            await run_in_threadpool(services.stop)

    # FastAPI's own /docs page loads its scripts from a CDN, and its routes take no dependencies:
    # the OpenAPI document is served below, to the read role.
    app = FastAPI(title=title, version=VERSION, description=description, docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.tokens = tokens
    app.state.services = services

    @app.get("/openapi.json", include_in_schema=False, dependencies=[READ])
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    for router in routers:
        app.include_router(router)
    return app


def create_app(services: Services, tokens: TokenRegistry) -> FastAPI:
    return _app("logpipe", "Log ETL and monitoring pipeline: ingest, simulate, query.", services, tokens,
                [health.router, logs.router, simulator.router, control.router, query.router, warehouse.router,
                 dashboard.router, dead_letters.router, kafka.router])


def create_store_app(store: Warehouse | None, health_report: Callable[[], dict[str, Any]],
                     tokens: TokenRegistry) -> FastAPI:
    """``store`` is served to others only if this process owns it (a ``Store``, not a remote one)."""
    routers = [health.router] + ([query.router, warehouse.router] if isinstance(store, Store) else [])
    return _app("logpipe process", "Stream processor: health, metrics, and the store it owns.",
                Services(config=GatewayConfig(), health=health_report, store=store), tokens, routers)
