from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MonitorConfig:
    rules_file: Path | None = None  # None: the default rules shipped with the package
    slack_webhook_url: str = ""
    webhook_url: str = ""
    dashboard_url: str = ""
