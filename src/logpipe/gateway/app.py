"""The gateway: ingest API, simulator control, read-only query API, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.routers import health, logs, query, simulator
from logpipe.pipeline import Pipeline


def create_app(pipeline: Pipeline) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(pipeline.start)
        try:
            yield
        finally:
            # uvicorn has stopped taking requests and finished the ones in flight
            await run_in_threadpool(pipeline.stop)

    app = FastAPI(title="logpipe", version="0.1.0", lifespan=lifespan,
                  description="Log ETL and monitoring pipeline: ingest, simulate, query.")
    app.state.pipeline = pipeline
    app.include_router(health.router)
    app.include_router(logs.router)
    app.include_router(simulator.router)
    app.include_router(query.router)
    return app
