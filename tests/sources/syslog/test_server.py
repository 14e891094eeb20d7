"""The syslog listener, sent to by Python's SysLogHandler, util-linux logger and Debian's rsyslog."""

from __future__ import annotations

import logging
import logging.handlers
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from logpipe import metrics
from logpipe.apps.up import Pipeline
from logpipe.child_process import stop_with_parent
from logpipe.config import Settings
from logpipe.sources.syslog.server import SyslogServer
from logpipe.transport.local_broker import free_port
from tests.kafka_support import wait_for


def _pipeline(store_dir: Path, **overrides) -> Pipeline:
    settings = Settings(data_dir=store_dir, clickhouse_database=f"sl_{uuid.uuid4().hex[:8]}", sim_enabled=False,
                        watch_enabled=False, otlp_enabled=False, syslog_enabled=True, syslog_port=0,
                        flush_interval_s=0.2, **overrides)
    return Pipeline(settings)


@pytest.fixture
def syslog(store_dir):
    pipeline = _pipeline(store_dir)
    pipeline.start()
    [server] = [s for s in pipeline.sources if isinstance(s, SyslogServer)]
    yield pipeline, server
    pipeline.stop()


def _rows(pipeline: Pipeline, where: str, columns: str = "count()", then: str = "") -> list[tuple]:
    return pipeline.store.query_rows(f"SELECT {columns} FROM {pipeline.settings.clickhouse_database}.fact_log "
                                     f"WHERE source = 'syslog' AND {where} {then}")[1]


def _count(pipeline: Pipeline, where: str) -> int:
    return _rows(pipeline, where)[0][0]


def test_python_syslog_handler_over_udp_and_tcp(syslog):
    pipeline, server = syslog
    for socktype, app in ((socket.SOCK_DGRAM, "pyudp"), (socket.SOCK_STREAM, "pytcp")):
        handler = logging.handlers.SysLogHandler(address=("127.0.0.1", server.port), socktype=socktype,
                                                 facility=logging.handlers.SysLogHandler.LOG_LOCAL3)
        handler.ident = f"{app}: "
        logger = logging.getLogger(f"syslog-{app}")
        logger.propagate = False
        logger.addHandler(handler)
        for i in range(25):
            logger.warning("disk %d nearly full", i)
        logger.error("disk gone")
        logger.removeHandler(handler)
        handler.close()
    for app in ("pyudp", "pytcp"):
        assert wait_for(lambda app=app: _count(pipeline, f"service = '{app}'") == 26, 20), app
        assert _rows(pipeline, f"service = '{app}'", "level, count(), any(attributes['facility']), any(kind)",
                     "GROUP BY level ORDER BY level") == [("ERROR", 1, "local3", "system"),
                                                           ("WARN", 25, "local3", "system")]
    assert _rows(pipeline, "service = 'pytcp' AND message = 'disk 7 nearly full'", "count()") == [(1,)]


def _logger(port: int, *args: str) -> None:
    subprocess.run(["logger", "--server", "127.0.0.1", "--port", str(port), *args], check=True, timeout=10)


def test_util_linux_logger_in_both_formats_and_framings(syslog):
    pipeline, server = syslog
    tag = uuid.uuid4().hex[:8]
    _logger(server.port, "--udp", "--rfc3164", "-t", f"u3164{tag}", "-p", "daemon.warning", "over udp, rfc 3164")
    _logger(server.port, "--udp", "--rfc5424", "-t", f"u5424{tag}", "-p", "auth.err", "--msgid", "ID47",
            "over udp, rfc 5424")
    _logger(server.port, "--tcp", "--rfc5424", "-t", f"t5424{tag}", "--sd-id", "zoo@32473", "--sd-param",
            'tiger="hungry"', "over tcp, newline framed")
    _logger(server.port, "--tcp", "--rfc5424", "--octet-count", "-t", f"oc{tag}", "-p", "local0.debug",
            "over tcp, octet counted")
    assert wait_for(lambda: _count(pipeline, f"endsWith(service, '{tag}')") == 4, 20)
    rows = _rows(pipeline, f"endsWith(service, '{tag}')", "service, level, message, attributes['facility'], "
                 "attributes['msgid'], attributes['zoo@32473.tiger'], host != ''", "ORDER BY service")
    assert rows == [(f"oc{tag}", "DEBUG", "over tcp, octet counted", "local0", "", "", True),
                    (f"t5424{tag}", "INFO", "over tcp, newline framed", "user", "", "hungry", True),
                    (f"u3164{tag}", "WARN", "over udp, rfc 3164", "daemon", "", "", True),
                    (f"u5424{tag}", "ERROR", "over udp, rfc 5424", "auth", "ID47", "", True)]


RSYSLOG_CONF = """
global(workDirectory="{work}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{listen}")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format")
"""


def test_rsyslog_forwards_to_logpipe_over_tcp(syslog, tmp_path):
    pipeline, server = syslog
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    assert Path(rsyslogd).exists(), "make test installs Debian's rsyslog (scripts/install-system-packages.sh)"
    listen = free_port()
    (tmp_path / "work").mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(RSYSLOG_CONF.format(work=tmp_path / "work", listen=listen, port=server.port))
    daemon = subprocess.Popen([rsyslogd, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslog.pid")],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "rsyslog.log", "wb"),  # noqa: SIM115
                              preexec_fn=stop_with_parent)
    try:
        time.sleep(1.5)
        tag = f"rs{uuid.uuid4().hex[:8]}"
        for i in range(30):
            _logger(listen, "--udp", "--rfc3164", "-t", tag, "-p", "mail.err", f"relayed {i}")
        log = tmp_path / "rsyslog.log"
        assert wait_for(lambda: _count(pipeline, f"service = '{tag}'") == 30, 30), log.read_text()
        assert _rows(pipeline, f"service = '{tag}'", "uniqExact(message), any(level), any(attributes['facility'])") \
            == [(30, "ERROR", "mail")]
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_tcp_senders_are_slowed_not_dropped_while_the_pipeline_is_full(store_dir):
    pipeline = _pipeline(store_dir, queue_max_events=1000)
    pipeline.start()
    [server] = [s for s in pipeline.sources if isinstance(s, SyslogServer)]
    try:
        pipeline.processor.pause()
        sender = socket.create_connection(("127.0.0.1", server.port))
        sender.settimeout(1.0)
        line = b"<14>1 - - held - - - a message that waits for room in the pipeline's queue\n"
        block = line * 2000
        sent = 0
        try:
            while sent < 5_000_000:  # far past what the listener may hold: the socket must stop taking
                sender.sendall(block)
                sent += 2000
        except TimeoutError:
            pass
        assert sent < 5_000_000, "the listener kept reading while the pipeline was full"
        pipeline.processor.resume()
        sender.settimeout(30)
        sender.sendall(b"".join(line for _ in range(10)))
        sent += 10
        sender.close()
        assert wait_for(lambda: _count(pipeline, "service = 'held'") >= sent, 60)
        # a blocked sendall may have put part of a block on the wire: whole messages land exactly once
        assert _count(pipeline, "service = 'held'") <= sent + 2000
        assert _rows(pipeline, "service = 'held'", "count() - uniqExact(event_id)") == [(0,)]
    finally:
        pipeline.stop()


def test_peers_outside_the_allowed_networks_are_not_heard(store_dir):
    pipeline = _pipeline(store_dir, syslog_allowed_networks=["10.0.0.0/8"])
    pipeline.start()
    [server] = [s for s in pipeline.sources if isinstance(s, SyslogServer)]
    try:
        before = metrics.counter_value(metrics.EVENTS_DROPPED, "syslog")
        _logger(server.port, "--udp", "-t", "outsider", "from loopback")
        _logger(server.port, "--tcp", "-t", "outsider", "from loopback")
        assert wait_for(lambda: metrics.counter_value(metrics.EVENTS_DROPPED, "syslog") >= before + 2, 10)
        time.sleep(0.5)
        assert _count(pipeline, "service = 'outsider'") == 0
    finally:
        pipeline.stop()


SYSLOG_ONLY = """
import socket, sys, time
from pathlib import Path
from logpipe.apps.up import Pipeline
from logpipe.config import Settings
from logpipe.sources.syslog.server import SyslogServer

pipeline = Pipeline(Settings(data_dir=Path(sys.argv[1]), sim_enabled=False, watch_enabled=False,
                             otlp_enabled=False, syslog_port=0, flush_interval_s=0.2))
pipeline.start()
[server] = [s for s in pipeline.sources if isinstance(s, SyslogServer)]
with socket.create_connection(("127.0.0.1", server.port)) as connection:
    connection.sendall(b"".join(b"<11>1 2026-12-08T00:00:00.000Z web-1 nginx - - - upstream %d down\\n" % i
                                for i in range(50)))
deadline = time.monotonic() + 30
count = 0
while time.monotonic() < deadline and count < 50:
    time.sleep(0.1)
    count = pipeline.store.scalar("SELECT count() FROM analytics.fact_log WHERE service = 'nginx'")
loaded_for_syslog = "numba" in sys.modules
line = b'{"ts": "%s", "service": "api", "message": "posted"}\\n' % time.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
answer = pipeline.submit(line, 1).result(30)
pipeline.stop()
print(count, loaded_for_syslog, answer.accepted, "numba" in sys.modules)
"""


def test_a_syslog_collector_does_without_the_json_scanner_until_json_arrives(tmp_path):
    """The NDJSON scanner's compiler (numba, about 140 MB of a process) is loaded by the first NDJSON
    payload, not by a `logpipe up` that only collects syslog: the simulator and OTLP receiver off."""
    run = subprocess.run([sys.executable, "-c", SYSLOG_ONLY, str(tmp_path)], capture_output=True, text=True,
                         timeout=180, preexec_fn=stop_with_parent)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["50", "False", "1", "True"]
