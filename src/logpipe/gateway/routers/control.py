"""PUT /v1/processor: pause or resume the embedded processor (operators and failure drills)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import PipelineDep
from logpipe.gateway.security import ADMIN, READ

router = APIRouter(prefix="/v1", tags=["control"])


class ProcessorState(BaseModel):
    running: bool


@router.get("/processor", dependencies=[READ])
async def processor_state(pipeline: PipelineDep) -> ProcessorState:
    if pipeline.processor is None or pipeline.kafka is not None:
        raise HTTPException(404, "no embedded processor in this process")
    return ProcessorState(running=pipeline.processor.running)


@router.put("/processor", dependencies=[ADMIN],
            summary="Pause (intake backs up, then 429) or resume the embedded processor")
async def set_processor_state(state: ProcessorState, pipeline: PipelineDep) -> ProcessorState:
    if pipeline.processor is None or pipeline.kafka is not None:
        raise HTTPException(404, "no embedded processor in this process")
    await run_in_threadpool(pipeline.processor.resume if state.running else pipeline.processor.pause)
    return ProcessorState(running=pipeline.processor.running)
