"""The store's failures as HTTP answers, for the routes that read or write the store in a worker thread."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool

from logpipe.warehouse.errors import StoreBusy, StoreError


async def in_thread(function: Any, *args: Any) -> Any:
    """``function(*args)`` in a worker thread: a busy store is a 429, a failed store call a 5xx."""
    try:
        return await run_in_threadpool(function, *args)
    except StoreBusy as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "1"}) from None
    except StoreError as exc:
        raise HTTPException(503 if exc.retryable else 500, {"code": exc.code, "message": str(exc)}) from None
