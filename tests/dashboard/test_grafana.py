"""Grafana provisioning: generated from the panel definitions, checked in unchanged, wired by uid."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import yaml

from logpipe.dashboard.grafana import DATASOURCE, dashboard_json
from logpipe.dashboard.panels import SQL_PANELS as PANELS
from tests.conftest import LOGPIPE

DEPLOY = Path(__file__).parents[2] / "deploy" / "grafana"


def test_the_checked_in_dashboard_is_what_the_command_generates(tmp_path):
    out = tmp_path / "logpipe.json"
    subprocess.run([*LOGPIPE, "grafana", "export", "--out", str(out)], check=True, capture_output=True)
    assert out.read_bytes() == (DEPLOY / "dashboards" / "logpipe.json").read_bytes() == dashboard_json()


def test_every_panel_is_in_the_grafana_dashboard_on_the_provisioned_datasource():
    board = orjson.loads((DEPLOY / "dashboards" / "logpipe.json").read_bytes())
    assert [p["title"] for p in board["panels"]] == [p.title for p in PANELS]
    datasource = yaml.safe_load((DEPLOY / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (source,) = datasource["datasources"]
    assert (source["type"], source["uid"]) == (DATASOURCE["type"], DATASOURCE["uid"])
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE
        assert all("$__timeFilter(" in t["rawSql"] for t in panel["targets"])
    assert board["templating"]["list"][0]["name"] == "service"
    provider = yaml.safe_load((DEPLOY / "provisioning" / "dashboards" / "logpipe.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
