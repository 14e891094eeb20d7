from __future__ import annotations

import subprocess

import orjson

from tests.conftest import LOGPIPE


def test_simulate_writes_ndjson_that_normalizes_cleanly(tmp_path):
    out = tmp_path / "sim.ndjson"
    subprocess.run([*LOGPIPE, "simulate", "--rate", "0", "--duration", "0.5", "--seed", "9",
                    "--batch-size", "500", "--output", str(out)], check=True, capture_output=True)
    lines = out.read_bytes().splitlines()
    assert len(lines) >= 500
    first = orjson.loads(lines[0])
    assert first["service"] in {"auth", "order", "payment", "notify"} and first["event_id"].startswith("sim-9-")


def test_simulate_to_a_running_gateway(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false")
    subprocess.run([*LOGPIPE, "simulate", "--rate", "5000", "--duration", "1", "--seed", "3",
                    "--output", f"{lp.base}/v1/logs"], check=True, capture_output=True, env=lp.client_env())
    requests = lp.query("SELECT count() FROM analytics.fact_log WHERE kind = 'request' AND source = 'http'")
    assert requests == [[5000]]
    result = subprocess.run([*LOGPIPE, "query", "SELECT count() > 0 FROM analytics.fact_log", "--format", "tsv",
                             "--url", lp.base], check=True, capture_output=True, text=True, env=lp.client_env())
    assert result.stdout.strip() == "true" or result.stdout.strip() == "1"
    assert lp.stop() == 0
