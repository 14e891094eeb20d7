from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SparkConfig:
    checkpoint_dir: Path
    master: str = "local[2]"
    source: str = "auto"  # auto: Spark's Kafka connector when its jars are on the classpath, else python
    trigger_s: float = 1.0
    max_offsets_per_trigger: int | None = 500_000
    starting_offsets: str = "earliest"
    ui: bool = True
    driver_memory: str = "2g"  # the driver JVM's heap, when logpipe starts it (not under spark-submit)
    write_give_up_s: float = 300.0  # a micro-batch whose write still fails after this fails the query
