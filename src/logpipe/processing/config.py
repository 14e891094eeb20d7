from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessorConfig:
    batch_max_rows: int = 100_000
    flush_interval_s: float = 1.0
    # one batch ahead of the processor is enough to keep it busy; each 100,000 more held ~40 MB of RSS
    queue_max_events: int = 100_000
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0
