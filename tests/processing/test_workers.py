"""`logpipe process --workers N`: processes that split the partitions and share one embedded store."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from logpipe.transport.kafka import ensure_topics
from tests.conftest import free_port
from tests.kafka_support import caught_up, headers, kafka_test_config, produce_traffic, start_processor, wait_for


def _free_port_run(length: int) -> int:
    """A port such that it and the next ``length - 1`` are free (worker i serves port + 1 + i)."""
    while True:
        base = free_port()
        try:
            for offset in range(length):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue


def _inserted_by(port: int, env: dict[str, str]) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, headers=headers(env)).text
    except httpx.HTTPError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "logpipe_events_sent_total" and sample.labels.get("component") == "clickhouse_sink":
                return sample.value
    return 0.0


def _healthy(port: int, env: dict[str, str]) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, headers=headers(env)).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_workers_split_partitions_and_a_third_joining_loses_and_doubles_nothing(kafka_broker, tmp_path):
    config, env = kafka_test_config(kafka_broker)
    ensure_topics(config)
    produced = [0]
    stop_producing = threading.Event()

    def keep_producing() -> None:
        seed = 100
        while not stop_producing.is_set():
            produced[0] += produce_traffic(config, 5_000, seed=seed).num_rows
            seed += 1
            stop_producing.wait(0.2)

    port = _free_port_run(3)
    supervisor = start_processor(env, tmp_path, "--workers", "2", "--port", str(port))
    third = None
    producer = threading.Thread(target=keep_producing)
    try:
        assert wait_for(lambda: _healthy(port, env), 90), (tmp_path / "process.log").read_text()[-3000:]
        # the workers' token comes through their environment, never their command line (ps shows it to all)
        workers = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
        assert len(workers) == 2
        for pid in workers:
            command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            environment = Path(f"/proc/{pid}/environ").read_bytes().decode()
            worker_token = next(v.split("=", 1)[1] for v in environment.split("\0")
                                if v.startswith("LOGPIPE_ADMIN_TOKEN="))
            assert worker_token != env["LOGPIPE_ADMIN_TOKEN"]  # one of the supervisor's, for this run only
            for token in (worker_token, *[v for k, v in env.items() if k.endswith("_TOKEN")]):
                assert token not in command_line
        producer.start()
        # both workers take a share of the partitions
        assert wait_for(lambda: _inserted_by(port + 1, env) > 0 and _inserted_by(port + 2, env) > 0, 90), \
            (tmp_path / "process.log").read_text()[-3000:]

        third_port = free_port()
        third = start_processor({**env, "LOGPIPE_CLICKHOUSE_URL": f"logpipe+http://127.0.0.1:{port}"}, tmp_path,
                                "--port", str(third_port))
        # the rebalance hands the newcomer partitions the first two gave up
        assert wait_for(lambda: _inserted_by(third_port, env) > 0, 90), \
            (tmp_path / "process.log").read_text()[-3000:]
        before = (_inserted_by(port + 1, env), _inserted_by(port + 2, env))
        assert wait_for(lambda: _inserted_by(port + 1, env) > before[0] or _inserted_by(port + 2, env) > before[1],
                        60)
        stop_producing.set()
        producer.join(60)

        assert wait_for(lambda: caught_up(config), 120), (tmp_path / "process.log").read_text()[-3000:]
        response = httpx.post(f"http://127.0.0.1:{port}/v1/query", timeout=60, headers=headers(env), json={
            "sql": "SELECT count(), uniqExact(event_id) FROM analytics.fact_log WHERE topic LIKE {prefix:String}",
            "parameters": {"prefix": config.topic_prefix + "%"}})
        assert response.json()["rows"] == [[produced[0], produced[0]]]
        assert produced[0] >= 15_000

        third.send_signal(signal.SIGTERM)
        assert third.wait(60) == 0
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(90) == 0
    finally:
        for process in (third, supervisor):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
