"""Simulator and wire-codec throughput on one core; writes bench/results/simulator.json and .md.

Run: make bench   (or .venv/bin/python bench/simulator_throughput.py)
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from logpipe.codec.ndjson import encode_ndjson
from logpipe.events import Provenance
from logpipe.processing.normalize import normalize_ndjson
from logpipe.simulator.generator import TrafficGenerator

BATCH = 100_000
ROUNDS = 20
RESULTS = Path(__file__).resolve().parent / "results"


def rate(fn, rounds: int = ROUNDS) -> float:
    rows, started = 0, time.perf_counter()
    for _ in range(rounds):
        rows += fn()
    return rows / (time.perf_counter() - started)


def main() -> None:
    generator = TrafficGenerator(seed=1)
    t0 = time.time()
    table = generator.generate(BATCH, t0, t0 + 1)
    payload = encode_ndjson(table)
    results = {
        "batch_events": BATCH,
        "generate_events_per_s": rate(lambda: generator.generate(BATCH, t0, t0 + 1).num_rows),
        "encode_ndjson_events_per_s": rate(lambda: len(encode_ndjson(table).splitlines()) and table.num_rows),
        "normalize_ndjson_events_per_s": rate(
            lambda: normalize_ndjson(payload, Provenance("bench")).facts.num_rows, rounds=10),
        "bytes_per_event": len(payload) / table.num_rows,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| stage | events/s |", "| --- | --- |"]
    for key in ("generate_events_per_s", "encode_ndjson_events_per_s", "normalize_ndjson_events_per_s"):
        lines.append(f"| {key.removesuffix('_events_per_s')} | {results[key]:,.0f} |")
    (RESULTS / "simulator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    target = 200_000
    verdict = "meets" if results["generate_events_per_s"] >= target else "MISSES"
    print(f"simulator generation {verdict} the {target:,} events/s target")


if __name__ == "__main__":
    main()
