"""PUT /v1/processor: pause or resume the embedded processor (operators and failure drills)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from logpipe.gateway.deps import ProcessorDep
from logpipe.gateway.security import ADMIN, READ

router = APIRouter(prefix="/v1", tags=["control"])


class ProcessorState(BaseModel):
    running: bool


@router.get("/processor", dependencies=[READ])
async def processor_state(processor: ProcessorDep) -> ProcessorState:
    return ProcessorState(running=processor.running)


@router.put("/processor", dependencies=[ADMIN],
            summary="Pause (intake backs up, then 429) or resume the embedded processor")
async def set_processor_state(state: ProcessorState, processor: ProcessorDep) -> ProcessorState:
    await run_in_threadpool(processor.resume if state.running else processor.pause)
    return ProcessorState(running=processor.running)
