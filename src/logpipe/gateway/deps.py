"""Dependencies of the gateway's routes, as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from logpipe.pipeline import Pipeline
from logpipe.warehouse.store import Store


def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def get_store(request: Request) -> Store:
    """The store this process owns; a process that reaches its store elsewhere has none to offer."""
    store = getattr(request.app.state, "store", None)
    if not isinstance(store, Store):
        raise HTTPException(404, "this process owns no store; query the processor's or ClickHouse directly")
    return store


def get_health(request: Request) -> Callable[[], dict[str, Any]]:
    return request.app.state.health


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
StoreDep = Annotated[Store, Depends(get_store)]
HealthDep = Annotated[Callable[[], dict[str, Any]], Depends(get_health)]
