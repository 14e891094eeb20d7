"""Run bench scenarios (each in its own process), print a table, write JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from logpipe.bench.scenarios import (
    DIMENSION_PAIRS,
    DIMENSIONS_GROUP,
    SCALE_OUT_GROUP,
    SCENARIOS,
    SOAK_SCENARIOS,
    SOURCES_GROUP,
)
from logpipe.child_process import stop_with_parent
from logpipe.memory import MALLOC_TUNABLES

TARGETS = {  # the targets on a 2-core machine (issue 8), judged in the report
    "embedded-max": [("inserted_per_s", ">=", 400_000)],
    "embedded-50k": [("inserted_per_s", ">=", 47_500), ("freshness_p99_s", "<=", 1.0)],
    "kafka-20k": [("freshness_p99_s", "<=", 2.0)],
    # the production topology through Kafka (issue 23)
    "kafka-max": [("inserted_per_s", ">=", 150_000)],
    "kafka-50k": [("inserted_per_s", ">=", 47_500), ("freshness_p99_s", "<=", 1.0)],
    "http-ingest": [("inserted_per_s", ">=", 100_000)],
    "drain-embedded": [("ratio_of_ceiling", ">=", 0.9)],
    "drain-spark": [("inserted_per_s", ">=", 100_000)],
    # the sources (issue 20)
    "file-tail": [("inserted_per_s", ">=", 300_000)],
    "otlp-ingest": [("inserted_per_s", ">=", 100_000)],
    "syslog-tcp": [("inserted_per_s", ">=", 100_000)],
    # logpipe up as users run it (issue 24): every minute's freshness, and the rate held
    "up-max": [("inserted_per_s", ">=", 400_000)],
    "up-200k": [("worst_minute_freshness_p99_s", "<=", 1.0), ("second_half_over_first", ">=", 0.95)],
}
PEAK_RSS_TARGET = ("peak_rss_mb", "<=", 1024)  # at any offered load: every scenario but drain-spark,
# whose JVM and Python workers size themselves (Spark's own memory settings)
CLICKHOUSE_INSERT_TARGET = 1_000_000  # rows/s, the raw insert ceiling measured in the embedded scenarios
DIMENSIONS_TARGET = 0.97  # a scenario's rate with the dimensions, to its rate without them (issue 21)
PANEL_P99_TARGET_MS = 300  # each panel over 24 h on the monitoring scenario's larger store (issue 24)

def run(names: list[str], duration_s: float, out: Path, console: Console) -> list[dict[str, Any]]:
    results = []
    if MALLOC_TUNABLES not in os.environ.get("GLIBC_TUNABLES", ""):
        console.print(f"note: GLIBC_TUNABLES={MALLOC_TUNABLES} is not set (`make bench` and `make up` set it); "
                      "large allocations will fault page by page", highlight=False)
    # Each scenario's stores (up to a GB a scenario) live in a scratch directory of its own (TMPDIR
    # for it and every process it starts). All are removed together after the last scenario, not
    # one by one: ext4 without a journal passes over inodes freed in the last 60 s when it makes
    # files, and a scenario started just after the previous one's store was removed wrote its parts
    # a fifth slower (insert ceiling 0.73-0.80M rows/s, against 0.94-1.03M with nothing removed).
    with (tempfile.TemporaryDirectory(prefix="logpipe-bench-", ignore_cleanup_errors=True) as scratch,
          Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=console) as bar):
        for name in names:
            task = bar.add_task(f"{name} ({duration_s:.0f}s)", total=duration_s)
            scenario_tmp = Path(scratch) / name
            scenario_tmp.mkdir()
            process = subprocess.Popen([sys.executable, "-m", "logpipe.bench.scenarios", name, str(duration_s)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "TMPDIR": str(scenario_tmp)}, preexec_fn=stop_with_parent)
            started = time.monotonic()
            stdout, stderr = wait_reading(process, lambda task=task, started=started: bar.update(
                task, completed=min(duration_s, time.monotonic() - started)))
            bar.update(task, completed=duration_s)
            if process.returncode != 0:
                console.print(f"[red]{name} failed[/red]\n{stderr[-2000:]}")
                continue
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    write(results, out)
    console.print(table(results))
    return results


def wait_reading(process: subprocess.Popen, tick: Callable[[], None], every_s: float = 0.5) -> tuple[str, str]:
    """``process``'s stdout and stderr once it has exited, calling ``tick`` every ``every_s`` meanwhile.
    The pipes are drained while it runs: a child that fills one (64 KB of log lines) would otherwise
    block on its next write and never exit."""
    while True:
        try:
            return process.communicate(timeout=every_s)
        except subprocess.TimeoutExpired:
            tick()


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def table(results: list[dict[str, Any]]) -> Table:
    view = Table(title="logpipe bench")
    for column in ("scenario", "inserted ev/s", "fresh p50 s", "fresh p99 s", "peak RSS MB", "bottleneck"):
        view.add_column(column)
    for r in results:
        view.add_row(r["scenario"], _fmt(r["inserted_per_s"]), _fmt(r["freshness_p50_s"], 3),
                     _fmt(r["freshness_p99_s"], 3), _fmt(r["peak_rss_mb"]), str(r["bottleneck"]))
    return view


def write(results: list[dict[str, Any]], out: Path) -> None:
    """One JSON per scenario run; README.md over every scenario's latest result in ``out``, so a
    single scenario run again updates its row and leaves the others."""
    out.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
               "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    for r in results:
        (out / f"{r['scenario']}.json").write_text(json.dumps({**r, "machine": machine}, indent=2) + "\n")
    results = [json.loads((out / f"{name}.json").read_text()) for name in SCENARIOS if (out / f"{name}.json").exists()]
    lines = ["# logpipe bench", "", "Measured with `logpipe bench` on "
             f"{machine['cpus']} CPUs ({machine['machine']}, Python {machine['python']}, GLIBC_TUNABLES "
             f"{machine['glibc_tunables'] or 'unset'}); each scenario's time is in its JSON (`machine.when`).", "",
             "| scenario | inserted ev/s | freshness p50 / p99 s | peak RSS MB | bottleneck | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        verdicts = []
        memory = [PEAK_RSS_TARGET] if r["scenario"] != "drain-spark" else []
        for key, op, goal in TARGETS.get(r["scenario"], []) + memory:
            value = _inserted_ratio(r) if key == "ratio_of_ceiling" else r.get(key, r.get("details", {}).get(key))
            met = value is not None and (value >= goal if op == ">=" else value <= goal)
            verdicts.append(f"{key} {op} {goal:,}: {'met' if met else 'NOT met'}")
        verdict = "; ".join(verdicts) or "-"
        lines.append(f"| {r['scenario']} | {_fmt(r['inserted_per_s'])} | {_fmt(r['freshness_p50_s'], 3)} / "
                     f"{_fmt(r['freshness_p99_s'], 3)} | {_fmt(r['peak_rss_mb'])} | {r['bottleneck']} | {verdict} |")
    ceilings = [s["ceiling_per_s"] for r in results if r["scenario"].startswith("embedded")
                for s in r["stages"] if s["stage"] == "inserted" and "ceiling_per_s" in s]
    if ceilings:
        typical = float(np.median(ceilings))
        verdict = "met" if typical >= CLICKHOUSE_INSERT_TARGET else "NOT met"
        lines += ["", f"Raw ClickHouse insert of normalized 200,000-row batches into a fresh store (the insert "
                  f"ceiling, median of {len(ceilings)} measured after each embedded scenario): {typical:,.0f} rows/s "
                  f"(target {CLICKHOUSE_INSERT_TARGET:,}: {verdict})."]
    by_name = {r["scenario"]: r for r in results}
    for on, off in DIMENSION_PAIRS:
        if on in by_name and off in by_name and by_name[off]["inserted_per_s"]:
            ratio = by_name[on]["inserted_per_s"] / by_name[off]["inserted_per_s"]
            verdict = "met" if ratio >= DIMENSIONS_TARGET else "NOT met"
            lines += ["", f"Dimensions' cost: {on} {by_name[on]['inserted_per_s']:,.0f} ev/s with the dimension views "
                      f"and sync, {by_name[off]['inserted_per_s']:,.0f} without: {ratio:.3f} (target >= "
                      f"{DIMENSIONS_TARGET}: {verdict}; a ratio means something when both ran in one "
                      "`--scenario dimensions`)."]
    search = by_name.get("search", {}).get("details")
    if search:
        lines += ["", f"## Search ({search['rows']:,} rows over 24 h)", "", "| query | p50 ms | p99 ms | target |",
                  "| --- | --- | --- | --- |"]
        for query, q in search["queries"].items():
            verdict = "met" if q["p99_ms"] <= q["target_p99_ms"] else "NOT met"
            lines.append(f"| {query} | {q['p50_ms']:,.0f} | {q['p99_ms']:,.0f} | p99 <= {q['target_p99_ms']} ms: "
                         f"{verdict} |")
        verdict = "met" if search["insert_ceiling_with_indexes"] >= CLICKHOUSE_INSERT_TARGET else "NOT met"
        lines += ["", f"Insert ceiling with the search indexes {search['insert_ceiling_with_indexes']:,} rows/s, "
                  f"without {search['insert_ceiling_without_indexes']:,}: {search['insert_ceiling_ratio']:.3f} "
                  f"(target {CLICKHOUSE_INSERT_TARGET:,} with them: {verdict})."]
    monitoring = by_name.get("monitoring-cost", {}).get("details")
    if monitoring:
        small, large = monitoring["sizes"]
        lines += ["", f"## Monitoring's cost ({small['rows']:,} and {large['rows']:,} rows over 24 h)", "",
                  f"Median and p99 of {small['runs']} runs each; the rows grew x{monitoring['rows_ratio']}.",
                  "", "| query | median ms, smaller store | median ms, larger store | grew | p99 ms, larger store |",
                  "| --- | --- | --- | --- | --- |"]
        large_p99 = large["p99_ms"]
        for name, ratio in monitoring["time_ratio"].items():
            lines.append(f"| {name} | {small['ms'][name]:,.1f} | {large['ms'][name]:,.1f} | x{ratio} | "
                         f"{large_p99[name]:,.1f} |")
        panels_24h = [ms for name, ms in large_p99.items() if name.startswith("panel ") and name.endswith("(24 h)")]
        verdict = "met" if max(panels_24h) <= PANEL_P99_TARGET_MS else "NOT met"
        lines += ["", f"Slowest panel over 24 h on the larger store: p99 {max(panels_24h):,.1f} ms "
                  f"(target <= {PANEL_P99_TARGET_MS} ms: {verdict})."]
    for name in SOAK_SCENARIOS:
        soak = by_name.get(name, {}).get("details", {}).get("minutes")
        if soak:
            lines += ["", f"## {name}, minute by minute", "",
                      "| minute | inserted ev/s | freshness p50 / p99 s | RSS MB | queue | active parts | "
                      "panel p99 ms |", "| --- | --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {m['minute']} | {m['inserted_per_s']:,} | {_fmt(m['freshness_p50_s'], 3)} / "
                      f"{_fmt(m['freshness_p99_s'], 3)} | {m['rss_mb']:,} | {m['queue_events']:,} | "
                      f"{_fmt(m['active_parts'])} | {_fmt(m['panel_p99_ms'], 1)} |" for m in soak]
    lines += ["", "## Stages", ""]
    for r in results:
        lines += [f"### {r['scenario']}", "", "| stage | events/s | MB/s | busy | of ceiling |",
                  "| --- | --- | --- | --- | --- |"]
        for s in r["stages"]:
            ratio = f"{s['ratio_of_ceiling']:.0%} of {s['ceiling_per_s']:,.0f}/s" if "ratio_of_ceiling" in s else "-"
            lines.append(f"| {s['stage']} | {s['events_per_s']:,.0f} | {s['mb_per_s']:.1f} | "
                         f"{s['busy_fraction']:.0%} | {ratio} |")
        lines += ["", "| component | CPU s | cores | peak RSS MB |", "| --- | --- | --- | --- |"]
        rss = r.get("peak_rss_mb_by_process", {})
        for c in r.get("components", []):
            lines.append(f"| {c['component']} | {c['cpu_s']:.1f} | {c['cores']:.2f} | "
                         f"{_fmt(rss.get(c['component']))} |")
        lines += [""] + [f"- {note}" for note in r["notes"]] + [""]
    (out / "README.md").write_text("\n".join(lines))


def _inserted_ratio(result: dict[str, Any]) -> float | None:
    inserted = next((s for s in result["stages"] if s["stage"] == "inserted"), None)
    return inserted.get("ratio_of_ceiling") if inserted else None


def scenario_names(requested: str) -> list[str]:
    """``all``, ``sources`` (the sources beside the NDJSON path), ``dimensions`` (with and without the
    dimension tables), ``soak`` (`logpipe up` as users run it), ``scale-out`` (processor workers and
    gateways through Kafka), or names separated by commas."""
    if requested == "all":
        return list(SCENARIOS)
    if requested == "sources":
        return list(SOURCES_GROUP)
    if requested == "dimensions":
        return list(DIMENSIONS_GROUP)
    if requested == "soak":
        return list(SOAK_SCENARIOS)
    if requested == "scale-out":
        return list(SCALE_OUT_GROUP)
    return [name.strip() for name in requested.split(",")]
