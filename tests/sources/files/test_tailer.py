"""The file source, following files while they are written, rotated by Debian's logrotate, and read
by `logpipe tail` through a kill -9; and the OpenTelemetry Collector's filelog receiver as a second,
outside reader of the same kind of file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from logpipe.apps.up import Pipeline
from logpipe.child_process import stop_with_parent
from logpipe.config import Settings
from logpipe.sources.files.config import FileSourceConfig
from logpipe.sources.files.tailer import FileSource
from logpipe.transport.local_broker import free_port
from tests.conftest import LOGPIPE, bearer, role_tokens
from tests.kafka_support import wait_for

LOGROTATE = "/usr/sbin/logrotate"


def _pipeline(store_dir: Path, **source: object) -> Pipeline:
    config = FileSourceConfig(name=f"t{uuid.uuid4().hex[:8]}", poll_interval_s=0.05, **source)  # type: ignore[arg-type]
    settings = Settings(data_dir=store_dir, clickhouse_database=f"fs_{uuid.uuid4().hex[:8]}", sim_enabled=False,
                        watch_enabled=False, otlp_enabled=False, syslog_enabled=False, flush_interval_s=0.2,
                        files=[config])
    return Pipeline(settings)


def _rows(pipeline: Pipeline, columns: str, where: str = "1") -> tuple:
    return pipeline.store.query_rows(f"SELECT {columns} FROM {pipeline.settings.clickhouse_database}.fact_log "
                                     f"WHERE source = 'file' AND {where}")[1][0]


def _source(pipeline: Pipeline) -> FileSource:
    return next(s for s in pipeline.sources if isinstance(s, FileSource))


def test_lines_written_while_followed_land_once_each_a_line_in_progress_when_done(store_dir, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"2026-12-01 10:00:{i % 60:02d} INFO line {i}\n" for i in range(1000)))
    pipeline = _pipeline(store_dir, include=[str(tmp_path / "*.log")], timezone="UTC")
    pipeline.start()
    try:
        with open(log, "a") as out:
            for i in range(1000, 3000):
                out.write(f"2026-12-01 10:01:{i % 60:02d} WARN line {i}\n")
                if i % 500 == 0:
                    out.flush()
            out.write("2026-12-01 10:02:00 ERROR half a li")  # the writer is not done with this line
            out.flush()
            assert wait_for(lambda: _rows(pipeline, "count()")[0] == 3000, 30)
            out.write("ne, now whole\n")
        assert wait_for(lambda: _rows(pipeline, "count()")[0] == 3001, 30)
        assert _rows(pipeline, "uniqExact(message), countIf(level = 'WARN'), any(service)") == (3001, 2000, "app")
        assert _rows(pipeline, "message, level, toString(ts)", "level = 'ERROR'") == (
            "2026-12-01 10:02:00 ERROR half a line, now whole", "ERROR", "2026-12-01 10:02:00.000")
    finally:
        pipeline.stop()


def test_start_at_end_skips_what_the_file_held_and_later_files_are_read_whole(store_dir, tmp_path):
    (tmp_path / "old.log").write_text("".join(f"old {i}\n" for i in range(500)))
    pipeline = _pipeline(store_dir, include=[str(tmp_path / "*.log")], start_at="end", service="web")
    pipeline.start()
    try:
        time.sleep(0.5)
        with open(tmp_path / "old.log", "a") as out:
            out.write("".join(f"new {i}\n" for i in range(20)))
        (tmp_path / "later.log").write_text("".join(f"later {i}\n" for i in range(30)))
        assert wait_for(lambda: _rows(pipeline, "count()")[0] == 50, 30)
        time.sleep(0.5)
        assert _rows(pipeline, "countIf(startsWith(message, 'old')), countIf(startsWith(message, 'later')), "
                               "any(service)") == (0, 30, "web")
    finally:
        pipeline.stop()


class Writer(threading.Thread):
    """An application writing numbered nginx lines, reopening its file by name for every burst (as an
    app does after logrotate's `create` and a reopen signal) or keeping it open (`copytruncate`)."""

    def __init__(self, path: Path, keep_open: bool):
        super().__init__(daemon=True)
        self.path, self.keep_open = path, keep_open
        self.written = 0
        self.stop = threading.Event()
        self.hold = threading.Lock()  # held while logrotate's copytruncate runs

    def line(self, i: int) -> str:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        return f'10.0.0.{i % 250} - - [{stamp}] "GET /item/{i} HTTP/1.1" 200 {i % 5000} "-" "writer"\n'

    def run(self) -> None:
        kept = open(self.path, "a") if self.keep_open else None  # noqa: SIM115
        while not self.stop.is_set():
            with self.hold:
                burst = "".join(self.line(self.written + k) for k in range(200))
                if kept is not None:
                    kept.write(burst)
                    kept.flush()
                else:
                    with open(self.path, "a") as out:
                        out.write(burst)
                self.written += 200
            time.sleep(0.01)
        if kept is not None:
            kept.close()


def _logrotate(tmp_path: Path, log: Path, mode: str) -> None:
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 20\n  nocompress\n  missingok\n  {mode}\n}}\n")
    subprocess.run([LOGROTATE, "-f", "-s", str(tmp_path / "logrotate.state"), str(conf)], check=True, timeout=30,
                   capture_output=True)


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_logrotate_while_the_file_is_written_loses_and_repeats_no_line(store_dir, tmp_path, mode):
    assert Path(LOGROTATE).exists(), "make test installs Debian's logrotate (scripts/install-system-packages.sh)"
    log = tmp_path / "access.log"
    log.touch()
    writer = Writer(log, keep_open=mode == "copytruncate")
    pipeline = _pipeline(store_dir, include=[str(tmp_path / "access.log*")], parser="nginx")
    pipeline.start()
    try:
        writer.start()
        for _ in range(3):
            time.sleep(0.7)
            if mode == "copytruncate":
                with writer.hold:  # copytruncate loses what is written between its copy and its truncation
                    _logrotate(tmp_path, log, mode)
            else:
                _logrotate(tmp_path, log, mode)
        time.sleep(0.5)
        writer.stop.set()
        writer.join(10)
        assert len(list(tmp_path.glob("access.log.*"))) == 3
        assert wait_for(lambda: _rows(pipeline, "count()")[0] >= writer.written, 60), (_rows(pipeline, "count()")[0],
                                                                                     writer.written)
        time.sleep(1)
        assert _rows(pipeline, "count(), uniqExact(endpoint), min(status), any(service)") == (
            writer.written, writer.written, 200, "nginx")
    finally:
        pipeline.stop()


def test_a_stack_trace_is_one_app_error_event_once_the_multiline_timeout_passes(store_dir, tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("2026-12-01 10:00:00,000 INFO started\n")
    pipeline = _pipeline(store_dir, include=[str(log)], multiline_start=r"^\d{4}-\d{2}-\d{2}", multiline_timeout_s=0.5,
                         timezone="UTC")
    pipeline.start()
    try:
        with open(log, "a") as out:
            out.write("2026-12-01 10:00:01,000 ERROR job failed\nTraceback (most recent call last):\n")
            out.flush()
            time.sleep(0.2)  # the trace goes on: its record waits
            out.write('  File "/app/job.py", line 3, in run\nKeyError: \'id\'\n')
        assert wait_for(lambda: _rows(pipeline, "count()")[0] == 2, 30)
        assert _rows(pipeline, "kind, level, message", "level = 'ERROR'") == (
            "app_error", "ERROR", "2026-12-01 10:00:01,000 ERROR job failed\nTraceback (most recent call last):\n"
            "  File \"/app/job.py\", line 3, in run\nKeyError: 'id'")
    finally:
        pipeline.stop()


def _tail(tmp_path: Path, log: Path, port: int, tokens: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "LOGPIPE_DATA_DIR": str(tmp_path / "data"), "LOGPIPE_FLUSH_INTERVAL_S": "0.2",
           **{f"LOGPIPE_{role.upper()}_TOKEN": token for role, token in tokens.items()}}
    return subprocess.Popen([*LOGPIPE, "tail", str(log), "--parser", "nginx", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "tail.log", "ab"),
                            preexec_fn=stop_with_parent)


def _count(port: int, tokens: dict[str, str]) -> tuple[int, int]:
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/query", headers=bearer(tokens["read"]), timeout=10,
                              content=b"SELECT count(), uniqExact(endpoint) FROM analytics.fact_log")
    except httpx.HTTPError:
        return (0, 0)
    return tuple(response.json()["rows"][0]) if response.status_code == 200 else (0, 0)


def test_logpipe_tail_through_kill_9_loses_and_repeats_no_line(tmp_path):
    log = tmp_path / "access.log"
    writer = Writer(log, keep_open=True)
    tokens, port = role_tokens(), free_port()
    writer.start()
    tail = _tail(tmp_path, log, port, tokens)
    try:
        assert wait_for(lambda: _count(port, tokens)[0] > 2000, 120), (tmp_path / "tail.log").read_text()[-3000:]
        tail.send_signal(signal.SIGKILL)  # in the middle: the writer is still writing
        tail.wait(30)
        tail = _tail(tmp_path, log, port, tokens)
        time.sleep(2)
        writer.stop.set()
        writer.join(10)
        assert wait_for(lambda: _count(port, tokens)[0] >= writer.written, 120), (_count(port, tokens), writer.written)
        time.sleep(1)
        assert _count(port, tokens) == (writer.written, writer.written)
        tail.send_signal(signal.SIGTERM)
        assert tail.wait(60) == 0
    finally:
        writer.stop.set()
        if tail.poll() is None:
            tail.kill()


COLLECTOR_CONFIG = """
receivers:
  filelog:
    include: [{path}]
    start_at: beginning
    operators:
      - type: add
        field: resource["service.name"]
        value: collected
exporters:
  otlphttp:
    endpoint: http://127.0.0.1:{port}
    encoding: proto
    compression: gzip
    headers:
      Authorization: "Bearer ${{env:INGEST_TOKEN}}"
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlphttp]
"""


def test_the_opentelemetry_collector_filelog_receiver_feeds_the_otlp_receiver(logpipe_factory, tmp_path):
    import otel_collector

    collector_bin = Path(otel_collector.__file__).parent / "bin" / "otelcol-contrib_linux_amd64"
    assert collector_bin.exists() and shutil.which(str(collector_bin))
    lp = logpipe_factory(LOGPIPE_SIM_ENABLED="false", LOGPIPE_WATCH_ENABLED="false")
    log = tmp_path / "collected.log"
    log.write_text("".join(f"collected line {i}\n" for i in range(250)))
    config = tmp_path / "collector.yaml"
    config.write_text(COLLECTOR_CONFIG.format(path=log, port=lp.otlp_port))
    collector = subprocess.Popen([str(collector_bin), "--config", str(config)],
                                 env={**os.environ, "INGEST_TOKEN": lp.tokens["ingest"]},  # never on a command line
                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / "collector.log", "wb"),  # noqa: SIM115
                                 preexec_fn=stop_with_parent)
    try:
        where = "source = 'otlp' AND service = 'collected'"
        assert wait_for(lambda: lp.query(f"SELECT count() FROM analytics.fact_log WHERE {where}")[0][0] == 250, 60), \
            (tmp_path / "collector.log").read_text()[-3000:]
        with open(log, "a") as out:
            out.write("".join(f"collected line {i}\n" for i in range(250, 300)))
        assert wait_for(lambda: lp.query(f"SELECT count() FROM analytics.fact_log WHERE {where}")[0][0] == 300, 60)
        assert lp.query(f"SELECT uniqExact(message), any(attributes['log.file.name']) FROM analytics.fact_log "
                        f"WHERE {where}") == [[300, "collected.log"]]
    finally:
        collector.terminate()
        collector.wait(20)
