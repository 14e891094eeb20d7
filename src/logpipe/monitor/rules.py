"""Alert rules: the YAML shape, validated; the default file ships with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

Kind = Literal["health", "error_rate", "latency_p99", "freshness", "dead_letters", "ingest_drop", "kafka_lag",
               "kafka_lag_growth", "failures"]
FIRES_BELOW = frozenset({"ingest_drop"})


class Rule(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Kind
    threshold: float
    window_s: float = Field(60, gt=0)
    baseline_s: float = Field(900, gt=0)
    min_events: int = Field(0, ge=0)
    for_s: float = Field(0, ge=0)
    cooldown_s: float = Field(300, ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    metrics: list[str] = Field(default_factory=list)

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.kind in FIRES_BELOW else value > self.threshold


class RuleSet(BaseModel):
    interval_s: float = Field(10, gt=0)
    rules: list[Rule]


def load_rules(path: Path | None = None) -> RuleSet:
    text = path.read_text() if path else (resources.files("logpipe.monitor") / "rules.yaml").read_text()
    return RuleSet.model_validate(yaml.safe_load(text))
