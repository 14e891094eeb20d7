"""Incidents the simulator can inject: error bursts, latency degradation, traffic spikes, outages."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, model_validator


class IncidentType(StrEnum):
    ERROR_BURST = "error_burst"
    LATENCY = "latency"
    SPIKE = "spike"
    OUTAGE = "outage"


class IncidentRequest(BaseModel):
    """What a user asks for; defaults fill what they leave out."""

    type: IncidentType
    service: str | None = Field(None, description="Target service; all services when omitted.")
    duration_s: float = Field(60.0, gt=0, le=7 * 86_400, description="How long it lasts, in simulated seconds.")
    start_in_s: float = Field(0.0, ge=0, description="Delay before it starts, in simulated seconds.")
    error_rate: float | None = Field(None, ge=0, le=1, description="error_burst: 5xx share (default 0.5).")
    factor: float | None = Field(None, gt=0, le=1000,
                                 description="latency: multiplier (default 5); spike: traffic multiplier (default 4).")

    @model_validator(mode="after")
    def _fill_defaults(self) -> IncidentRequest:
        if self.type is IncidentType.ERROR_BURST and self.error_rate is None:
            self.error_rate = 0.5
        if self.type is IncidentType.LATENCY and self.factor is None:
            self.factor = 5.0
        if self.type is IncidentType.SPIKE and self.factor is None:
            self.factor = 4.0
        return self


@dataclass
class Incident:
    id: int
    request: IncidentRequest
    start_s: float  # simulated epoch seconds
    end_s: float
    cancelled: bool = False

    def active_at(self, now_s: float) -> bool:
        return not self.cancelled and self.start_s <= now_s < self.end_s

    def as_dict(self, now_s: float) -> dict[str, Any]:
        state = "active" if self.active_at(now_s) else ("scheduled" if now_s < self.start_s else "ended")
        return {"id": self.id, **self.request.model_dump(mode="json"), "start_s": self.start_s,
                "end_s": self.end_s, "state": state}


@dataclass
class Effects:
    """Per-service adjustments in force at one instant (arrays indexed like the flat model's services)."""

    p5xx_override: np.ndarray  # NaN where the model's own rate applies
    latency_factor: np.ndarray
    volume_factor: np.ndarray
    outage: np.ndarray  # bool


@dataclass
class IncidentSchedule:
    services: list[str]
    incidents: list[Incident] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, request: IncidentRequest, now_s: float) -> Incident:
        if request.service is not None and request.service not in self.services:
            raise ValueError(f"unknown service {request.service!r}; known: {', '.join(self.services)}")
        start = now_s + request.start_in_s
        incident = Incident(next(self._ids), request, start, start + request.duration_s)
        self.incidents.append(incident)
        return incident

    def effects(self, now_s: float) -> Effects:
        n = len(self.services)
        effects = Effects(np.full(n, np.nan), np.ones(n), np.ones(n), np.zeros(n, dtype=bool))
        for incident in self.incidents:
            if not incident.active_at(now_s):
                continue
            request = incident.request
            targets = (np.arange(n) if request.service is None
                       else np.array([self.services.index(request.service)]))
            match request.type:
                case IncidentType.ERROR_BURST:
                    effects.p5xx_override[targets] = request.error_rate
                case IncidentType.LATENCY:
                    effects.latency_factor[targets] *= request.factor
                case IncidentType.SPIKE:
                    effects.volume_factor[targets] *= request.factor
                case IncidentType.OUTAGE:
                    effects.outage[targets] = True
        return effects
