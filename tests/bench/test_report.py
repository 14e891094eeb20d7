"""`logpipe bench`: a scenario run end to end, its JSON and Markdown as a user reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from logpipe.bench.report import wait_reading
from tests.conftest import LOGPIPE


def test_a_fixed_rate_scenario_reports_rates_freshness_memory_and_components(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "embedded-10k", "--duration", "4", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(scratch)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(scratch.iterdir()) == []  # the scenario's stores are gone with it
    assert "logpipe bench" in run.stdout + run.stderr  # the table
    result = json.loads((tmp_path / "embedded-10k.json").read_text())
    assert result["scenario"] == "embedded-10k" and result["duration_s"] >= 4
    # offered 10,000 events/s: what was inserted is that rate, give or take the last flush
    assert 5_000 <= result["inserted_per_s"] <= 11_000
    assert result["freshness_samples"] >= 8  # markers every 0.25 s, each found by a query
    assert 0 < result["freshness_p50_s"] <= result["freshness_p95_s"] <= result["freshness_p99_s"]
    assert [s["stage"] for s in result["stages"]] == ["generated", "serialized (JSON)", "normalized", "inserted"]
    assert all(s["mb_per_s"] > 0 for s in result["stages"])  # events/s and MB/s for every stage
    inserted = result["stages"][-1]
    assert inserted["ceiling_per_s"] > inserted["events_per_s"] and 0 < inserted["ratio_of_ceiling"] < 1
    components = {c["component"]: c["cpu_s"] for c in result["components"]}
    assert components["processor"] > 0 and components["ClickHouse engine (chdb)"] > 0
    assert result["peak_rss_mb"] > 100
    assert result["bottleneck"]
    markdown = (tmp_path / "README.md").read_text()
    assert "| embedded-10k |" in markdown and "| processor |" in markdown


def test_an_unknown_scenario_is_refused_with_the_known_ones(tmp_path):
    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "nope", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "embedded-max" in run.stderr and "drain-spark" in run.stderr


def test_a_scenario_that_logs_more_than_a_pipe_holds_still_finishes():
    """A child blocked writing to a full stderr pipe never exits unless the pipe is drained meanwhile."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('w' * 2_000_000); print('result')"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcome: list[tuple[str, str]] = []
    ticks: list[int] = []
    waiter = threading.Thread(target=lambda: outcome.append(wait_reading(child, lambda: ticks.append(1), 0.05)),
                              daemon=True)
    waiter.start()
    waiter.join(60)
    if not outcome:
        child.kill()
    assert outcome == [("result\n", "w" * 2_000_000)]


def test_the_search_scenario_reports_each_querys_latency_against_its_target_and_what_the_indexes_cost(tmp_path):
    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "search", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "LOGPIPE_BENCH_SEARCH_ROWS": "400000"})
    assert run.returncode == 0, run.stderr[-2000:]
    details = json.loads((tmp_path / "search.json").read_text())["details"]
    assert details["rows"] >= 400_000 and details["index_mb"] > 0
    assert set(details["queries"]) == {"trace_id lookup", "two-word message search", "first page of a filtered view"}
    for query in details["queries"].values():
        assert 0 < query["p50_ms"] <= query["p99_ms"] and query["queries"] == 40 and query["rows_found_min"] >= 1
    assert details["insert_ceiling_with_indexes"] > 0 and details["insert_ceiling_without_indexes"] > 0
    assert len(details["insert_ceiling_rounds"]["with"]) == len(details["insert_ceiling_rounds"]["without"]) == 2
    markdown = (tmp_path / "README.md").read_text()
    assert "| trace_id lookup |" in markdown and "p99 <= 100 ms" in markdown
    assert "Insert ceiling with the search indexes" in markdown


def test_the_monitoring_cost_scenario_times_every_check_and_panel_on_two_stores(tmp_path):
    from logpipe.bench.monitoring import CHECKS
    from logpipe.dashboard.panels import PANELS

    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "monitoring-cost", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "LOGPIPE_BENCH_MONITORING_ROWS": "200000,400000"})
    assert run.returncode == 0, run.stderr[-2000:]
    details = json.loads((tmp_path / "monitoring-cost.json").read_text())["details"]
    small, large = details["sizes"]
    assert small["rows"] < large["rows"]
    panels = [p.id for p in PANELS if p.source != "metrics"]
    expected = {f"check {c}" for c in CHECKS} | {f"panel {p} ({span})" for p in panels for span in ("1 h", "24 h")}
    assert set(details["time_ratio"]) == expected == set(small["ms"]) == set(large["ms"])
    assert all(ms > 0 for ms in large["ms"].values())
    assert set(large["p99_ms"]) == expected and all(large["p99_ms"][q] >= large["ms"][q] for q in expected)
    markdown = (tmp_path / "README.md").read_text()
    assert "| check freshness |" in markdown and "Slowest panel over 24 h on the larger store: p99" in markdown


def test_the_soak_scenario_runs_logpipe_up_and_reports_each_minute(tmp_path):
    """up-max with "minutes" of 2 s: `logpipe up` with its simulator and watchdog, a dashboard tab
    refreshing every panel, and a row per minute of rate, freshness, RSS, queue and parts."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "up-max", "--duration", "8", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TMPDIR": str(scratch), "LOGPIPE_BENCH_MINUTE_S": "2"})
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "up-max.json").read_text())
    minutes = result["details"]["minutes"]
    assert [m["minute"] for m in minutes] == [1, 2, 3, 4]
    assert all(m["inserted_per_s"] > 0 and m["rss_mb"] > 100 and m["active_parts"] >= 1 for m in minutes)
    assert all(m["queue_events"] >= 0 for m in minutes)
    # a saturated pipeline answers a marker or a whole refresh of the tab in about a "minute" of 2 s
    timed = [m for m in minutes if m["markers"]]
    assert timed and all(0 < m["freshness_p50_s"] <= m["freshness_p99_s"] for m in timed)
    assert any(m["panel_p99_ms"] is not None for m in minutes)
    assert result["details"]["panel_refresh_failures"] == 0
    assert result["inserted_per_s"] > 0 and result["stages"][0]["stage"] == "generated by the simulator"
    markdown = (tmp_path / "README.md").read_text()
    assert "## up-max, minute by minute" in markdown and "inserted_per_s >= 400,000" in markdown


def test_the_kafka_scenario_runs_the_production_topology_and_counts_every_stage(tmp_path):
    """Gateway and processor each in a process of their own, as the compose file deploys them; each
    stage counted from the process it runs in, produced and consumed against the broker's ceilings, and
    the markers found through the processor's store."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run([*LOGPIPE, "bench", "--scenario", "kafka-20k", "--duration", "6", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(scratch)})
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "kafka-20k.json").read_text())
    components = {c["component"] for c in result["components"]}
    assert {"logpipe gateway", "logpipe process", "broker (tansu)"} <= components
    stages = {s["stage"]: s for s in result["stages"]}
    assert list(stages) == ["accepted by the gateway", "produced to Kafka", "consumed", "normalized", "inserted"]
    assert stages["accepted by the gateway"]["events_per_s"] > 0
    assert stages["produced to Kafka"]["ratio_of_ceiling"] > 0 and stages["consumed"]["ratio_of_ceiling"] > 0
    assert result["freshness_samples"] >= 8
    assert "| kafka-20k |" in (tmp_path / "README.md").read_text()
