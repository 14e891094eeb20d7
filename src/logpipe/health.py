"""The one shape of a health report, for every process: each component's state, and the whole.

``GET /healthz`` answers it (503 unless ``status`` is ``ok``) and the watchdog's health rule reads it.
A component is ``up``, ``down``, or ``paused`` (on purpose: the simulator); the report is ``ok`` while
no component is down.
"""

from __future__ import annotations

from typing import Any

UP, DOWN, PAUSED = "up", "down", "paused"


def component(up: bool, **details: Any) -> dict[str, Any]:
    return {"status": UP if up else DOWN, **details}


def report(components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    healthy = all(state.get("status") != DOWN for state in components.values())
    return {"status": "ok" if healthy else "degraded", "components": components}
