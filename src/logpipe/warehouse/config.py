from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WarehouseConfig:
    url: str = ""  # empty: embedded chdb under data_dir; http(s)://: a ClickHouse server; logpipe+http://: an owner
    data_dir: Path = Path("./data")
    database: str = "analytics"
    retention_days: int = 30

    @property
    def embedded(self) -> bool:
        return not self.url

    @property
    def owned_elsewhere(self) -> bool:
        """The embedded store of another logpipe process, reached through its API."""
        return self.url.startswith("logpipe+")

    @property
    def embedded_path(self) -> Path:
        return self.data_dir / "clickhouse"
