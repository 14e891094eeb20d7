from __future__ import annotations

from dataclasses import dataclass

from logpipe.processing.contract import RetryPolicy
from logpipe.processing.normalize import Rules


@dataclass(frozen=True)
class ProcessorConfig:
    batch_max_rows: int = 100_000
    flush_interval_s: float = 1.0
    # one batch ahead of the processor is enough to keep it busy; each 100,000 more held ~40 MB of RSS
    queue_max_events: int = 100_000
    # 100,000 simulator events are about 37 MB: events bind first for them, bytes for large events
    queue_max_bytes: int = 64 << 20
    batch_max_bytes: int = 64 << 20  # payload bytes normalized in one call (memory: a few times this)
    # Arrow bytes of normalized rows in one insert: the engine's insert and its views take a few times
    # this; 100,000 simulator rows are about 18 MB (a batch of them is cut by rows), syslog and access-log
    # rows (attributes) about 45% more
    insert_max_bytes: int = 20 << 20
    max_event_bytes: int = 1 << 20
    max_future_s: float = 300.0
    retention_days: int = 30
    retry_initial_s: float = 0.2
    retry_max_s: float = 5.0

    @property
    def rules(self) -> Rules:
        return Rules(max_future_s=self.max_future_s, retention_days=self.retention_days,
                     max_event_bytes=self.max_event_bytes)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.retry_initial_s, self.retry_max_s)
