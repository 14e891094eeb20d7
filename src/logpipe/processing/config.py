from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessorConfig:
    batch_max_rows: int = 100_000
    flush_interval_s: float = 1.0
    queue_max_events: int = 200_000
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
