from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulatorConfig:
    rate: float = 2000.0  # events per second, the daily mean when diurnal
    seed: int | None = None
    speed: float = 1.0  # simulated seconds per wall second
    diurnal: bool = True
    running: bool = True
    tick_s: float = 0.1  # a tick's events go out as one batch, or several when the engine's queue holds fewer
