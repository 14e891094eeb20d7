"""The engine contract against running processes: a poison batch under `kill -9`, an idempotent retry
across a crash, and memory under many large posts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from logpipe.transport.kafka import KafkaProducerTransport, ensure_topics
from tests.conftest import free_port
from tests.kafka_support import caught_up, headers, kafka_test_config, produce_traffic, start_processor, wait_for
from tests.processing.test_contract import POISON
from tests.warehouse.test_dimensions import dimension_pairs

pytestmark = pytest.mark.e2e


def _prepare_store(data_dir: Path) -> None:
    """The schema and a constraint that makes the store refuse some rows for good, applied by a process
    of its own (the embedded store belongs to one process at a time)."""
    code = ("from pathlib import Path; from logpipe.warehouse.store import Store; "
            "from logpipe.warehouse.config import WarehouseConfig; "
            f"s = Store(WarehouseConfig(data_dir=Path({str(data_dir)!r}))); s.apply_schema(); "
            "s.command(\"ALTER TABLE analytics.fact_log ADD CONSTRAINT refuse_poison CHECK message != "
            f"'{POISON}'\"); s.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _rows(port: int, env: dict[str, str], sql: str) -> list:
    response = httpx.post(f"http://127.0.0.1:{port}/v1/query", content=sql.encode(), headers=headers(env), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_a_poison_batch_under_kill_9_stores_every_good_row_once_and_dead_letters_the_rest(own_kafka_broker,
                                                                                         tmp_path):
    config, env = kafka_test_config(own_kafka_broker)
    ensure_topics(config)
    _prepare_store(tmp_path)
    good = produce_traffic(config, 60_000, seed=11).num_rows
    producer = KafkaProducerTransport(config)
    now = time.time()
    poisoned = [orjson.dumps({"event_id": f"poison-{i}", "ts": now, "service": "auth", "message": POISON})
                for i in range(25)]
    producer.send_raw(poisoned, [config.topic_prefix + "auth"] * 25, [f"u{i}" for i in range(25)]).result(30)
    producer.close()
    good += produce_traffic(config, 60_000, seed=12).num_rows
    port = free_port()
    supervisor = start_processor({**env, "LOGPIPE_DIM_SYNC_S": "1"}, tmp_path, "--workers", "2", "--port", str(port))
    try:
        def health() -> dict:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", headers=headers(env), timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return {}

        assert wait_for(lambda: health().get("status") == "ok", 90), (tmp_path / "process.log").read_text()[-3000:]
        assert wait_for(lambda: _rows(port, env, "SELECT count() FROM analytics.fact_log")[0][0] > 20_000, 120)
        victim = health()["components"]["worker-0"]["pid"]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: caught_up(config), 180), (tmp_path / "process.log").read_text()[-3000:]
        assert _rows(port, env, "SELECT count(), uniqExact(event_id) FROM analytics.fact_log") == [[good, good]]
        for dimension, from_facts in dimension_pairs():  # replayed after the kill: none counted twice or lost
            assert _rows(port, env, dimension.replace("{db}", "analytics")) == _rows(
                port, env, from_facts.replace("{db}", "analytics"))
        # the supervisor, which owns the embedded store, syncs the dimensions: its dictionaries know the hosts
        hosts = _rows(port, env, "SELECT host FROM analytics.dim_host")
        assert hosts and wait_for(lambda: _rows(port, env, "SELECT countIf(dictHas('analytics.dict_host', host)) "
                                                           "FROM analytics.dim_host")[0][0] == len(hosts), 30)
        dead = _rows(port, env, "SELECT uniqExact(offset), count(), countIf(startsWith(reason, "
                                "'rejected by the store: ') AND position(reason, 'refuse_poison') > 0) "
                                "FROM analytics.dead_letter")
        assert dead[0][0] == 25 and dead[0][1] >= 25 and dead[0][2] == dead[0][1]  # at least once, each its reason
        assert wait_for(lambda: health().get("status") == "ok", 60)
        workers = health()["components"]
        assert (workers["worker-0"]["restarts"], workers["worker-1"]["restarts"]) == (1, 0)  # no restart loop
        dlq = Path(tmp_path / "process.log").read_text()
        assert dlq.count("Traceback") == 0
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(90) == 0


def test_an_idempotent_post_retried_after_a_crash_is_stored_once(logpipe_factory, tmp_path):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false")
    run = uuid.uuid4().hex[:8]
    now = time.time()
    body = b"\n".join(orjson.dumps({"event_id": f"{run}-{i}", "ts": now, "service": "auth"}) for i in range(200))
    keyed = {**lp.headers("ingest"), "Idempotency-Key": run}
    first = httpx.post(f"{lp.base}/v1/logs", content=body, headers=keyed, timeout=60)
    assert first.status_code == 200 and first.json()["accepted"] == 200
    assert lp.stop(signal.SIGKILL) == -signal.SIGKILL  # nothing of the process remembers the key now
    again = logpipe_factory(data_dir=tmp_path, tokens=lp.tokens, LOGPIPE_SIM_ENABLED="false")
    retried = httpx.post(f"{again.base}/v1/logs", content=body, headers=keyed, timeout=60)
    assert retried.status_code == 200 and retried.json()["accepted"] == 200
    assert again.query(f"SELECT count(), uniqExact(event_id) FROM analytics.fact_log "
                       f"WHERE startsWith(event_id, '{run}-')") == [[200, 200]]
    assert again.query("SELECT service, events FROM analytics.dim_service") == [["auth", 200]]
    assert again.stop() == 0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_eighty_concurrent_posts_of_15_mb_keep_memory_under_a_gib(logpipe_factory):
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_WATCH_ENABLED="false")
    now = time.time()
    line = orjson.dumps({"ts": now, "service": "auth", "status": 200, "message": "x" * 900}) + b"\n"
    body = line * (15_000_000 // len(line))
    outcomes: list[tuple[int, int]] = []
    lock = threading.Lock()

    def post() -> None:
        response = httpx.post(f"{lp.base}/v1/logs", content=body, headers=lp.headers("ingest"), timeout=120)
        accepted = response.json()["accepted"] if response.status_code == 200 else 0
        with lock:
            outcomes.append((response.status_code, accepted))

    senders = [threading.Thread(target=post) for _ in range(80)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(300)
    assert len(outcomes) == 80
    assert {status for status, _ in outcomes} <= {200, 429}
    assert any(status == 200 for status, _ in outcomes)
    assert _peak_rss_mb(lp.process.pid) < 1024
    accepted = sum(n for _, n in outcomes)
    assert wait_for(lambda: lp.query("SELECT count() FROM analytics.fact_log")[0][0] == accepted, 120)
    assert lp.stop() == 0
