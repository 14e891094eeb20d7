"""The built-in dashboard in headless Debian Chromium, driven by Playwright (never its own browser)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from logpipe.dashboard.panels import PANELS
from tests.dashboard.conftest import ARTIFACTS


def _series_names(page, panel_id: str) -> list[str]:
    return page.evaluate(
        "(id) => echarts.getInstanceByDom(document.querySelector(`#panel-${id} .body`))"
        ".getOption().series.map((s) => s.name)", panel_id)


def test_the_dashboard_draws_every_panel_and_follows_range_and_service(page, logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_RATE="3000")
    # a couple of dead letters, so that panel has something to draw too
    assert httpx.post(f"{lp.base}/v1/logs", content=b'{"service": "auth"}\n{"ts": "soon"}\n',
                      headers=lp.headers("ingest")).status_code == 200
    assert lp.query("SELECT count() FROM analytics.fact_log")[0][0] >= 0
    # and requests of the last minutes, so the time series have whole buckets to draw from the start
    now = time.time()
    recent = b"\n".join(orjson.dumps({"ts": now - 150 + i / 2, "service": ("auth", "order")[i % 2], "status": 200})
                        for i in range(120))  # 2.5 to 1.5 minutes ago: whole buckets, well inside 5 minutes
    assert httpx.post(f"{lp.base}/v1/logs", content=recent, headers=lp.headers("ingest")).status_code == 200
    # and system logs from two hosts, over syslog, for the panel of system logs and the source filter
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with socket.create_connection(("127.0.0.1", lp.syslog_port), timeout=10) as connection:
        connection.sendall(b"".join(f"<{pri}>1 {stamp} {host} kernel - - - link {i} down\n".encode()
                                    for i, (pri, host) in enumerate([(3, "db-1"), (4, "db-1"), (3, "web-2")])))

    # without the token the page asks for it; the login address sets an HttpOnly cookie and leaves the address
    assert page.goto(lp.base + "/").status == 401
    assert "needs a token" in page.content()
    page.goto(lp.base + "/?token=" + lp.tokens["read"])
    assert page.url == lp.base + "/"
    assert lp.tokens["read"] not in page.evaluate("document.cookie")
    page.problems.clear()  # the 401 of the first visit, and its favicon
    chart_panels = [p.id for p in PANELS if p.chart != "table"]
    quiet = {"alerts"}  # nothing fires in this test
    all_drawn = " && ".join(f"Number(document.querySelector('#panel-{p.id}')?.dataset.rows) > 0" for p in PANELS
                            if p.id not in quiet)
    page.wait_for_function(all_drawn, timeout=90_000, polling=1000)
    for panel_id in chart_panels:
        assert page.locator(f"#panel-{panel_id} .body canvas").count() >= 1, panel_id
    # minutes of data: the range fits them, and no bucket still filling is drawn (it would look like a drop)
    assert page.evaluate("document.querySelector('#range').value") == "300000"
    for panel_id in ("eps", "error_rate", "traffic_week"):
        card = page.locator(f"#panel-{panel_id}")
        bucket, drawn = (int(card.get_attribute(f"data-{a}")) for a in ("bucket-ms", "drawn-at"))
        last_points = page.evaluate(
            "(id) => echarts.getInstanceByDom(document.querySelector(`#panel-${id} .body`)).getOption().series"
            ".filter((s) => s.data.length > 1).map((s) => s.data[s.data.length - 1][0])", panel_id)
        assert last_points and all(t + bucket <= drawn for t in last_points), panel_id
    for panel in PANELS:
        if panel.chart == "table" and panel.id not in quiet:
            assert page.locator(f"#panel-{panel.id} tbody tr").count() >= 1, panel.id
    assert "auth" in _series_names(page, "eps") and "order" in _series_names(page, "eps")
    assert {"simulator", "syslog"} <= set(_series_names(page, "sources"))
    assert sorted(_series_names(page, "system_hosts")) == ["ERROR", "WARN"]
    assert {"ingested ev/s", "inserted ev/s", "queued events"} <= set(_series_names(page, "pipeline_live"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # the service filter narrows every chart to one service
    page.wait_for_function("document.querySelector('#service').options.length > 2", timeout=30_000)
    before = int(page.evaluate("document.body.dataset.refreshes"))
    page.select_option("#service", "auth")
    page.wait_for_function(f"Number(document.body.dataset.refreshes) > {before}", timeout=30_000)
    assert sorted(_series_names(page, "eps")) == ["auth", "total"]

    # the source filter narrows them to one source (two refreshes: one may have begun before the change)
    page.select_option("#service", "")
    page.wait_for_function("[...document.querySelector('#source').options].some((o) => o.value === 'syslog')",
                           timeout=70_000)
    before = int(page.evaluate("document.body.dataset.refreshes"))
    page.select_option("#source", "syslog")
    page.wait_for_function(f"Number(document.body.dataset.refreshes) > {before + 1}", timeout=30_000)
    assert _series_names(page, "sources") == ["syslog"]
    assert sorted(_series_names(page, "eps")) == ["kernel", "total"]
    page.select_option("#source", "")

    # a range in the past has nothing to draw
    yesterday = datetime.now() - timedelta(days=1)
    page.select_option("#range", "custom")
    page.fill("#from", (yesterday - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#to", yesterday.strftime("%Y-%m-%dT%H:%M"))
    page.dispatch_event("#to", "change")
    page.wait_for_function("document.querySelector('#panel-eps').dataset.rows === '0'", timeout=30_000)
    assert page.locator("#panel-eps .empty").is_visible()

    # dark mode redraws with the dark theme
    page.click("#theme")
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)
    assert page.problems == []
    assert lp.stop() == 0
