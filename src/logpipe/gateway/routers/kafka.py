"""Kafka as this process sees it, read-only (read role): topics, partitions, offsets, the processor
group's lag, and the newest dead letters of the dead-letter topic (``transport.kafka_overview``)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import KafkaDep
from logpipe.gateway.security import READ
from logpipe.transport.kafka_overview import KafkaUnavailable

router = APIRouter(prefix="/api/kafka", tags=["kafka"], dependencies=[READ])


async def _read(function: Any, *args: Any) -> Response:
    try:
        body = await run_in_threadpool(function, *args)
    except KafkaUnavailable as exc:
        raise HTTPException(503, f"Kafka did not answer: {exc}", headers={"Retry-After": "5"}) from None
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/topics", summary="Topics, partitions, offsets and lag")
async def topics(kafka: KafkaDep) -> Response:
    """Each log topic with, per partition, its leader, earliest and end offsets, and the processor
    group's committed offset and lag."""
    return await _read(kafka.topics)


@router.get("/dead-letters", summary="Newest messages of the dead-letter topic")
async def newest_dead_letters(kafka: KafkaDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
    """Newest first, each with its partition, offset, time, headers (error, origin topic, partition and
    offset) and value (its first 64 KiB)."""
    return await _read(kafka.newest_dead_letters, limit)
