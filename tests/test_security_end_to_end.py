"""`logpipe up` as an attacker on the same machine meets it: tokens, the query sandbox, limits."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import LOGPIPE, bearer

pytestmark = pytest.mark.e2e


def _line(event_id: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "ts": time.time(), "service": "auth", "status": 200}) + b"\n"


def test_anonymous_and_wrong_callers_get_401_and_each_role_only_its_own(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false")
    base = lp.base
    assert httpx.get(f"{base}/ping").json() == {"status": "ok"}
    probes = [("POST", "/v1/logs"), ("POST", "/v1/query"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/"),
              ("GET", "/openapi.json"), ("PUT", "/v1/simulator"), ("PUT", "/v1/processor"),
              ("POST", "/v1/warehouse/alerts"), ("GET", "/api/panels/eps")]
    for method, path in probes:
        for headers in ({}, bearer("guess")):
            assert httpx.request(method, base + path, headers=headers).status_code == 401, (method, path)
    assert httpx.post(f"{base}/v1/logs", content=_line("ok-1"), headers=lp.headers("ingest")).status_code == 200
    assert httpx.post(f"{base}/v1/logs", content=_line("no-1"), headers=lp.headers("read")).status_code == 403
    assert httpx.put(f"{base}/v1/processor", json={"running": False}, headers=lp.headers("read")).status_code == 403
    assert httpx.put(f"{base}/v1/simulator", json={"rate": 5_000_000},
                     headers=lp.headers("ingest")).status_code == 403
    assert httpx.post(f"{base}/v1/query", content=b"SELECT 1", headers=lp.headers("ingest")).status_code == 403
    assert lp.query("SELECT event_id FROM analytics.fact_log") == [["ok-1"]]
    assert lp.stop() == 0


def test_the_query_api_reads_and_writes_no_files_and_reaches_no_network(logpipe_factory, tmp_path):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false")
    target = tmp_path / "written-by-a-query.pth"
    site = Path(httpx.__file__).parents[1]
    attempts = [f"SELECT 1 INTO OUTFILE '{target}'", f"SELECT 'import os' INTO OUTFILE '{site}/evil.pth'",
                "SELECT file('/etc/passwd')", "SELECT file('/proc/self/environ', 'RawBLOB')",
                "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                "SELECT * FROM file('/proc/self/environ', 'RawBLOB')",
                "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
                "SELECT * FROM executable('id', 'LineAsString', 'x String')",
                "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'LineAsString')",
                "SELECT * FROM remote('127.0.0.1', system.one)",
                "SELECT * FROM system.users", "SELECT 1 SETTINGS readonly = 0"]
    for sql in attempts:
        response = httpx.post(f"{lp.base}/v1/query", content=sql.encode(), headers=lp.headers())
        assert response.status_code == 400, (sql, response.text)
        assert response.json()["detail"]["message"].startswith("refused:"), sql
        assert "root:" not in response.text and lp.tokens["admin"] not in response.text
    assert not target.exists() and not (site / "evil.pth").exists()
    assert lp.stop() == 0


def test_a_runaway_query_stops_at_its_limit_while_ingest_keeps_acknowledging(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_QUERY_TIMEOUT_S="4")
    answer: dict[str, httpx.Response] = {}

    def runaway() -> None:
        answer["query"] = httpx.post(f"{lp.base}/v1/query", content=b"SELECT count() FROM system.numbers",
                                     headers=lp.headers(), timeout=60)

    thread = threading.Thread(target=runaway)
    thread.start()
    time.sleep(0.5)
    acknowledged = []
    while thread.is_alive() and len(acknowledged) < 5:
        response = httpx.post(f"{lp.base}/v1/logs", content=_line(f"during-{len(acknowledged)}"),
                              headers=lp.headers("ingest"), timeout=30)
        assert response.status_code == 200, response.text
        health = httpx.get(f"{lp.base}/healthz", headers=lp.headers(), timeout=30)
        assert health.status_code == 200
        acknowledged.append(response.json()["accepted"])
    still_running = thread.is_alive()
    thread.join(60)
    assert still_running, "the query ended before five acknowledged posts: it did not hold on"
    assert acknowledged == [1] * 5
    assert answer["query"].status_code == 400 and answer["query"].json()["detail"]["code"] == 159  # TIMEOUT
    assert lp.query("SELECT count() FROM analytics.fact_log WHERE startsWith(event_id, 'during-')") == [[5]]
    assert lp.stop() == 0


def test_a_first_start_generates_private_tokens_that_the_cli_finds(tmp_path):
    """No token configured: logpipe up generates them, prints a login address, and the CLI finds them."""
    from tests.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")}
    env.update(LOGPIPE_DATA_DIR=str(tmp_path), LOGPIPE_HTTP_PORT=str(port), LOGPIPE_SIM_ENABLED="false")
    log = tmp_path / "up.log"
    process = subprocess.Popen([*LOGPIPE, "up"], env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        credentials = tmp_path / "credentials.json"
        deadline = time.monotonic() + 60
        while "pipeline started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        tokens = orjson.loads(credentials.read_bytes())
        assert f"http://127.0.0.1:{port}/?token={tokens['read']}" in log.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 401
        result = subprocess.run([*LOGPIPE, "query", "SELECT 40 + 2", "--format", "tsv"], env=env, text=True,
                                capture_output=True, timeout=60)
        assert result.stdout.strip() == "42", result.stderr
        url = subprocess.run([*LOGPIPE, "url"], env=env, text=True, capture_output=True, timeout=60).stdout.strip()
        assert url == f"http://127.0.0.1:{port}/?token={tokens['read']}"
        header = subprocess.run([*LOGPIPE, "token", "header", "--role", "admin"], env=env, text=True,
                                capture_output=True, timeout=60).stdout.strip()
        assert header == f"Authorization: Bearer {tokens['admin']}"
        curl = subprocess.run(["bash", "-c", f"curl -s -H @<({' '.join(LOGPIPE)} token header --role admin) "
                               f"http://127.0.0.1:{port}/v1/simulator"], env=env, text=True, capture_output=True,
                              timeout=60)
        assert orjson.loads(curl.stdout)["running"] is False  # README's way: the token never on a command line
        sent = subprocess.run([*LOGPIPE, "simulate", "--rate", "1000", "--duration", "1", "--output",
                               f"http://127.0.0.1:{port}/v1/logs"], env=env, capture_output=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
    finally:
        process.terminate()
        assert process.wait(60) == 0
    assert tokens["admin"] not in log.read_text()  # only the read token's login address is printed
