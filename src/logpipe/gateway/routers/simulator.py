from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from logpipe.gateway.deps import SimulatorDep
from logpipe.gateway.security import ADMIN, READ
from logpipe.simulator.incidents import IncidentRequest
from logpipe.simulator.runner import Scenario

router = APIRouter(prefix="/v1/simulator", tags=["simulator"])


class SimulatorUpdate(BaseModel):
    running: bool | None = None
    rate: float | None = Field(None, ge=0, le=5_000_000)
    scenario: Scenario | None = None
    speed: float | None = Field(None, gt=0, le=100_000)


@router.get("", dependencies=[READ])
async def get_simulator(simulator: SimulatorDep) -> dict:
    return simulator.status()


@router.put("", dependencies=[ADMIN])
async def put_simulator(update: SimulatorUpdate, simulator: SimulatorDep) -> dict:
    simulator.update(update.running, update.rate, update.scenario, update.speed)
    return simulator.status()


@router.post("/incidents", status_code=201, dependencies=[ADMIN])
async def post_incident(request: IncidentRequest, simulator: SimulatorDep) -> dict:
    try:
        incident = simulator.add_incident(request)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return incident.as_dict(simulator.clock.now())


@router.get("/incidents", dependencies=[READ])
async def list_incidents(simulator: SimulatorDep) -> dict:
    return {"incidents": simulator.incidents()}
