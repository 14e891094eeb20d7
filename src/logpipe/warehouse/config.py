from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QueryLimits:
    """What one user query may take. Past a limit the query fails with the engine's error (never a
    silently shortened result); past ``max_concurrent`` running queries a new one is refused."""

    timeout_s: float = 30.0
    max_memory_bytes: int = 1 << 30
    max_result_rows: int = 100_000
    max_result_bytes: int = 64 << 20
    max_concurrent: int = 2

    def settings(self) -> dict[str, Any]:
        return {"max_execution_time": self.timeout_s, "max_memory_usage": self.max_memory_bytes,
                "max_result_rows": self.max_result_rows, "max_result_bytes": self.max_result_bytes,
                "result_overflow_mode": "throw", "timeout_overflow_mode": "throw"}


@dataclass(frozen=True)
class WarehouseConfig:
    url: str = ""  # empty: embedded chdb under data_dir; http(s)://: a ClickHouse server; logpipe+http://: an owner
    data_dir: Path = Path("./data")
    database: str = "analytics"
    retention_days: int = 30
    user: str = "default"
    password: str = field(default="", repr=False)
    # A ClickHouse server's read-only user for user queries (GRANT SELECT ON analytics.*, a settings
    # profile with limits); empty: the writing user, its session read-only.
    read_user: str = ""
    read_password: str = field(default="", repr=False)
    limits: QueryLimits = field(default_factory=QueryLimits)
    api_token: str = field(default="", repr=False)  # what a logpipe+http:// store is called with (admin role)
    dictionary_user: str = ""  # a server's user the dictionaries read as; empty: its default user

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
