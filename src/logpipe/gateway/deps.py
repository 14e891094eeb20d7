"""What the gateway's routes depend on, as ``Services`` (built by the process that serves them) and
``Annotated`` aliases for the routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from logpipe.dashboard.history import PipelineHistory
from logpipe.gateway.body import InFlight
from logpipe.gateway.config import GatewayConfig
from logpipe.processing.dead_letters import DeadLetters
from logpipe.processing.processor import Processor
from logpipe.simulator.runner import SimulatorRunner
from logpipe.transport.intake import Intake
from logpipe.transport.kafka_overview import KafkaOverview
from logpipe.warehouse.base import Warehouse
from logpipe.warehouse.store import Store


def _nothing() -> None:
    return None


@dataclass
class Services:
    """Everything a gateway app serves; what a process does not run is None (its routes answer 404)."""

    config: GatewayConfig
    health: Callable[[], dict[str, Any]]
    intake: Intake | None = None
    store: Warehouse | None = None
    simulator: SimulatorRunner | None = None
    processor: Processor | None = None  # the embedded processor, which operators may pause
    history: PipelineHistory | None = None
    kafka: KafkaOverview | None = None  # the read-only view of Kafka, where this process uses Kafka
    dead_letters: DeadLetters | None = None  # listing and replay, where this process owns a store and an intake
    start: Callable[[], None] = _nothing
    stop: Callable[[], None] = _nothing
    # one of the largest bodies (or several smaller ones) at a time: a body is held until its rows are
    # stored, beside its normalized rows and the insert's own memory (the 1 GiB test of 80 posts)
    in_flight: InFlight = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = InFlight(self.config.max_body_bytes)


def _present(service: Any, missing: str) -> Any:
    """What a route depends on, or 404 where this process does not run it."""
    if service is None:
        raise HTTPException(404, missing)
    return service


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_intake(request: Request) -> Intake:
    return _present(get_services(request).intake, "this process takes no logs")


def get_store(request: Request) -> Store:
    """The store this process owns; a process that reaches its store elsewhere has none to offer."""
    store = get_services(request).store
    if not isinstance(store, Store):
        raise HTTPException(404, "this process owns no store; query the processor's or ClickHouse directly")
    return store


def get_simulator(request: Request) -> SimulatorRunner:
    return _present(get_services(request).simulator, "no simulator in this process")


def get_processor(request: Request) -> Processor:
    return _present(get_services(request).processor, "no embedded processor in this process")


def get_dead_letters(request: Request) -> DeadLetters:
    return _present(get_services(request).dead_letters, "this process replays no dead letters")


def get_kafka(request: Request) -> KafkaOverview:
    return _present(get_services(request).kafka, "this process runs without Kafka (LOGPIPE_KAFKA_BOOTSTRAP)")


ServicesDep = Annotated[Services, Depends(get_services)]
IntakeDep = Annotated[Intake, Depends(get_intake)]
StoreDep = Annotated[Store, Depends(get_store)]
SimulatorDep = Annotated[SimulatorRunner, Depends(get_simulator)]
ProcessorDep = Annotated[Processor, Depends(get_processor)]
DeadLettersDep = Annotated[DeadLetters, Depends(get_dead_letters)]
KafkaDep = Annotated[KafkaOverview, Depends(get_kafka)]
